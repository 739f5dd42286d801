"""What `${env...}` sees: the library's whole environment, the service's allow-list."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.environment import allowed_environment, default_environment


def test_library_use_sees_the_environment_over_a_dotenv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("FROM_FILE=file\nBOTH=file\n")
    monkeypatch.setenv("BOTH", "process")

    env = default_environment(tmp_path)

    assert env["FROM_FILE"] == "file"
    assert env["BOTH"] == "process"
    assert "PATH" in env


def test_the_service_passes_only_allow_listed_variables(tmp_path: Path) -> None:
    env_file = tmp_path / "flows.env"
    env_file.write_text("DATABASE_URL=postgresql://users\n")
    base = {"DATABASE_URL": "sqlite://store", "SECRET": "s", "REDIS_URL": "redis://r"}

    env = allowed_environment(["DATABASE_URL", "REDIS_URL", "ABSENT"], env_file, base)

    assert env == {"DATABASE_URL": "postgresql://users", "REDIS_URL": "redis://r"}


def test_the_environment_can_win_over_the_file(tmp_path: Path) -> None:
    """A scaffolded api.py: its store is its own, so DATABASE_URL in its environment is the
    flow's, and wins over the .env beside the flow, as `python -m app run` lets it."""
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=postgresql://users_db\nREDIS_URL=redis://file\n")
    base = {"DATABASE_URL": "postgresql://elsewhere"}

    env = allowed_environment(["DATABASE_URL", "REDIS_URL"], env_file, base, file_overrides=False)

    assert env == {"DATABASE_URL": "postgresql://elsewhere", "REDIS_URL": "redis://file"}

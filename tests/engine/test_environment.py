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

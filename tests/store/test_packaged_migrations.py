"""The migrations ship inside the package: a wheel holds the whole migration environment, and
`python -m app db upgrade` migrates a database from any directory, with no checkout of the
repository beside it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from app.store.migrations import SCRIPT_LOCATION, VERSIONS, alembic_config
from app.store.models import Base

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = Path("app/store/alembic")
COMMAND_TIMEOUT = 120  # seconds: building the wheel takes a few


def shipped_files() -> set[str]:
    """What the wheel must hold: the environment, the revision template, every revision."""
    versions = sorted(path.name for path in VERSIONS.glob("*.py"))
    assert versions, f"no revision found in {VERSIONS}"
    return {
        (PACKAGED / "env.py").as_posix(),
        (PACKAGED / "script.py.mako").as_posix(),
        *((PACKAGED / "versions" / name).as_posix() for name in versions),
    }


def run(
    *command: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,  # the callers assert on the outcome, with its output
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built as a wheel, offline, with this environment's setuptools, from a copy
    of its sources (a build writes `build/` and `*.egg-info` beside them)."""
    if importlib.util.find_spec("setuptools.command.bdist_wheel") is None:
        reason = "this environment's setuptools cannot build wheels (requirements-dev.txt pins one)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT / "app", source / "app", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "requirements.txt"):
        shutil.copy2(ROOT / name, source / name)
    built = run(
        sys.executable,
        *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"),
        *("--wheel-dir", str(work / "dist"), str(source)),
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = (work / "dist").glob("*.whl")
    return found


def test_the_wheel_holds_the_migration_environment_and_every_revision(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

    assert shipped_files() <= names


def test_an_installed_wheel_migrates_a_fresh_database_from_another_directory(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    installed = run(
        sys.executable,
        *("-m", "pip", "install", "--no-deps", "--no-index"),
        *("--target", str(site), str(wheel)),
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy comes first, before the editable install of the repository.
    environment = os.environ | {"PYTHONPATH": str(site)}

    where = run(
        sys.executable, "-c", "import app; print(app.__file__)", cwd=elsewhere, env=environment
    )
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr
    assert_db_upgrade_migrates(elsewhere, environment)


def test_db_upgrade_migrates_a_fresh_database_from_outside_the_repository(
    tmp_path: Path,
) -> None:
    environment = os.environ | {"PYTHONPATH": str(ROOT)}

    assert_db_upgrade_migrates(tmp_path, environment)


def assert_db_upgrade_migrates(directory: Path, environment: dict[str, str]) -> None:
    database = directory / "fresh.db"
    migrated = run(
        *(sys.executable, "-m", "app", "db", "upgrade"),
        cwd=directory,
        env=environment | {"DATABASE_URL": f"sqlite:///{database}"},
    )

    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert set(Base.metadata.tables) <= tables
    assert revision == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_the_migration_environment_is_found_through_the_package() -> None:
    assert SCRIPT_LOCATION == ROOT / PACKAGED
    assert alembic_config().get_main_option("script_location") == str(SCRIPT_LOCATION)

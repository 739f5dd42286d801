"""Settings: where the store is, comma lists, pool options, migrate-on-start defaults."""

from __future__ import annotations

import pytest

from app.settings import DEFAULT_DATABASE_URL, Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "POSTGRES_HOST", "POSTGRES_PASSWORD", "TASK_MODULES"):
        monkeypatch.delenv(name, raising=False)


def test_sqlite_is_the_default_store_and_migrates_at_start() -> None:
    defaults = settings()

    assert defaults.database_url == DEFAULT_DATABASE_URL
    assert defaults.should_migrate_on_start


def test_postgres_parts_build_the_url_when_database_url_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("POSTGRES_PASSWORD", "p@ss:word")

    built = settings()

    assert built.database_url == (
        "postgresql+asyncpg://postgres:p%40ss%3Aword@db.internal:5432/flow_db"
    )
    assert not built.should_migrate_on_start


def test_database_url_wins_over_postgres_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("DATABASE_URL", "mysql+aiomysql://root@localhost/flows")

    assert settings().database_url == "mysql+aiomysql://root@localhost/flows"


def test_pool_options_ride_in_the_url_query() -> None:
    chosen = settings(
        database_url="postgresql+asyncpg://u@h/db?pool_size=20&ssl=require&max_overflow=3"
    )

    assert chosen.database_url == "postgresql+asyncpg://u@h/db?ssl=require"
    assert (chosen.pool_size, chosen.max_overflow) == (20, 3)


def test_sqlite_absolute_paths_survive() -> None:
    assert settings(database_url="sqlite+aiosqlite:////var/lib/flows.db").database_url == (
        "sqlite+aiosqlite:////var/lib/flows.db"
    )


def test_lists_are_comma_separated_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_MODULES", " tasks.a , ./b.py,,")

    assert settings().task_modules == ["tasks.a", "./b.py"]


def test_invalid_values_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        settings(max_body_bytes=0)


def test_max_steps_comes_from_the_environment_and_is_at_least_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings().max_steps == 5000
    monkeypatch.setenv("MAX_STEPS", "12")
    assert settings().max_steps == 12
    with pytest.raises(ValueError, match="max_steps"):
        settings(max_steps=0)

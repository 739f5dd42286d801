"""Applying the Alembic migrations (app/store/alembic/versions) from code: the service, the CLI,
tests.

The service migrates from inside its running event loop: `upgrade(engine)` hands Alembic an open
connection of the service's own engine, in one transaction that commits when the migrations
are done (PostgreSQL's DDL is transactional; MariaDB and SQLite commit each DDL statement). The
CLI, which has no loop, calls `upgrade_url(url)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# The migration environment ships inside the package (env.py, script.py.mako, versions/), so an
# installed wheel migrates its database without a checkout of the repository.
SCRIPT_LOCATION = Path(__file__).resolve().with_name("alembic")
VERSIONS = SCRIPT_LOCATION / "versions"


def alembic_config(url: str | None = None) -> Config:
    """Alembic's config for the packaged migrations, from any working directory.

    No ini file: alembic.ini, at the repository's root, is for the `alembic` command. `url`
    names the database; without it, the environment (env.py) uses the DATABASE_URL setting.
    """
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # As alembic.ini says: `version_locations` (and the like) are split on os.pathsep.
    config.set_main_option("path_separator", "os")
    if url is not None:
        # The ini file's interpolation would read `%` (as in a percent-encoded password).
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False  # the caller's logging stays as it is
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the engine's database up to `revision`, in one transaction where it has them."""
    await _migrate(engine, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    """Migrate the engine's database down to `revision` (`base`: no tables of ours left)."""
    await _migrate(engine, lambda config: command.downgrade(config, revision))


def upgrade_url(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision`; for callers without an event loop."""
    command.upgrade(alembic_config(url), revision)


async def _migrate(engine: AsyncEngine, step: Callable[[Config], None]) -> None:
    config = alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection  # env.py migrates on it
        step(config)

    async with (
        engine.connect() as connection,
        _sqlite_foreign_keys_off(connection),
        connection.begin(),
    ):
        await connection.run_sync(run)


@asynccontextmanager
async def _sqlite_foreign_keys_off(connection: AsyncConnection) -> AsyncIterator[None]:
    """SQLite alters a table by copy, drop and rename (batch mode): with foreign keys enforced,
    dropping a parent table would cascade-delete its children's rows. The pragma is ignored
    inside a transaction, so it is switched outside, and restored for the pool's next user."""
    if connection.dialect.name != "sqlite":
        yield
        return
    enforced = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
    await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    await connection.commit()
    try:
        yield
    finally:
        await connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")
        await connection.commit()

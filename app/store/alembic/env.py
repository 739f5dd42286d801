"""Alembic's environment: migrates the store, whichever of the three databases it is.

The database is `-x url=...` when given, else the config's `sqlalchemy.url` (set by
`app.store.migrations.alembic_config(url)`), else the service's DATABASE_URL setting; the URL
always gets its async driver (`app.store.database.async_url`). Two ways in:

- the `alembic` command and `upgrade_url()`: this module opens its own engine (asyncio.run);
- `app.store.migrations.upgrade(engine)`, from inside the service's running event loop: the
  caller passes an open sync connection in `config.attributes["connection"]`, and owns its
  transaction (migrations run in it; the caller commits).
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.settings import POOL_OPTIONS, get_settings
from app.store.database import async_url
from app.store.models import Base

config = context.config
target_metadata = Base.metadata


def database_url() -> URL:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or get_settings().database_url
    )
    # The service's URL may carry its pool options (`?pool_size=20`); a driver would reject them.
    return make_url(async_url(url)).difference_update_query(POOL_OPTIONS)


def context_options(dialect_name: str) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "compare_type": True,
        # SQLite alters little in place; batch mode rebuilds the table for later ALTERs.
        "render_as_batch": dialect_name == "sqlite",
    }


def run_migrations_offline() -> None:
    """`alembic upgrade head --sql`: print the SQL for a DBA instead of running it."""
    url = database_url()
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **context_options(url.get_backend_name()),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **context_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_on_own_engine() -> None:
    engine = create_async_engine(database_url(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        asyncio.run(run_migrations_on_own_engine())
    else:
        run_migrations(connection)


# Programmatic callers keep their own logging (fileConfig would reset the service's loggers).
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

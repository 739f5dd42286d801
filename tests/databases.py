"""Fresh, empty databases for tests on the store's three kinds of database, dropped afterwards.

SQLite is a file in the test's tmp_path; PostgreSQL and MariaDB get a uniquely named database on
the machine's server (skipped when the server is absent, failed under CI: tests/servers.py),
its name starting with TEST_DATABASE_PREFIX when set (`alice_` makes `alice_fm_test_<hex>`), so
that runs on a shared server can be told apart and cleaned up by whoever made them.
A database costs ~25 ms to create on PostgreSQL and ~10 ms on MariaDB; migrating it to head
~100 ms on either, so migrated databases are built per test rather than cloned from a template.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy import NullPool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.settings import Settings
from app.store.database import create_engine
from app.store.migrations import upgrade
from tests.servers import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER, require_service

MARIADB_HOST = os.environ.get("TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("TEST_MARIADB_PORT", "3306"))
MARIADB_USER = os.environ.get("TEST_MARIADB_USER", "root")

STORE_DATABASES = ("sqlite", "postgresql", "mariadb")

# Quoted into CREATE DATABASE on both servers, and within PostgreSQL's 63 characters with the
# longest name the suite makes (`fm_workers_` and 12 hex digits).
DATABASE_PREFIX = os.environ.get("TEST_DATABASE_PREFIX", "")
if not re.fullmatch(r"[a-z0-9_]{0,32}", DATABASE_PREFIX):
    raise ValueError(
        f"TEST_DATABASE_PREFIX={DATABASE_PREFIX!r}: at most 32 lower-case letters, digits and "
        "underscores"
    )

_POSTGRES_ADMIN_DSN = f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres"


def unique_database_name(prefix: str) -> str:
    return f"{DATABASE_PREFIX}{prefix}_{uuid.uuid4().hex[:12]}"


def postgres_database_url(name: str, scheme: str = "postgresql") -> str:
    return f"{scheme}://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"


async def create_postgres_database(name: str) -> None:
    admin = await asyncpg.connect(_POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def drop_postgres_database(name: str) -> None:
    admin = await asyncpg.connect(_POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def mariadb_database_url(name: str) -> str:
    return f"mysql+aiomysql://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{name}"


async def create_mariadb_database(name: str) -> None:
    # utf8mb4 whatever the server's default: definitions and outputs hold any unicode.
    await _mariadb_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")


async def drop_mariadb_database(name: str) -> None:
    await _mariadb_admin(f"DROP DATABASE IF EXISTS `{name}`")


async def _mariadb_admin(statement: str) -> None:
    admin = create_async_engine(
        mariadb_database_url(""), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await admin.dispose()


@asynccontextmanager
async def postgres_database(prefix: str) -> AsyncIterator[str]:
    """The name of a new, empty PostgreSQL database, dropped afterwards."""
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    name = unique_database_name(prefix)
    await create_postgres_database(name)
    try:
        yield name
    finally:
        await drop_postgres_database(name)


@asynccontextmanager
async def mariadb_database(prefix: str) -> AsyncIterator[str]:
    """The name of a new, empty MariaDB database, dropped afterwards."""
    require_service("MariaDB", MARIADB_HOST, MARIADB_PORT)
    name = unique_database_name(prefix)
    await create_mariadb_database(name)
    try:
        yield name
    finally:
        await drop_mariadb_database(name)


@asynccontextmanager
async def fresh_store_database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """The async-driver URL of a new, empty database of `kind` (one of STORE_DATABASES)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    elif kind == "postgresql":
        async with postgres_database("fm_store") as name:
            yield postgres_database_url(name, scheme="postgresql+asyncpg")
    elif kind == "mariadb":
        async with mariadb_database("fm_store") as name:
            yield mariadb_database_url(name)
    else:
        raise ValueError(f"no such store database: {kind!r}; choose one of {STORE_DATABASES}")


@asynccontextmanager
async def store_engine(url: str) -> AsyncIterator[AsyncEngine]:
    """The service's own engine for `url`, disposed afterwards (MariaDB won't drop a database
    that an open connection still holds locks in)."""
    engine = create_engine(Settings(database_url=url))
    try:
        yield engine
    finally:
        await engine.dispose()


async def migrate_to_head(url: str) -> None:
    async with store_engine(url) as engine:
        await upgrade(engine)

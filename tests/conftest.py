"""Fixtures shared by the whole suite: each test gets its own database and Redis key prefix."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis_asyncio

from app.settings import Settings
from app.store.database import create_engine
from app.store.unit_of_work import Store
from tests.databases import (
    STORE_DATABASES,
    fresh_store_database,
    migrate_to_head,
    postgres_database,
    postgres_database_url,
)
from tests.servers import REDIS_HOST, REDIS_PORT, REDIS_URL, require_service


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """URL of a fresh, empty PostgreSQL database that is dropped after the test."""
    async with postgres_database("fm_test") as name:
        yield postgres_database_url(name)


@pytest.fixture
def redis_url() -> str:
    """URL of the test machine's Redis (TEST_REDIS_URL, or TEST_REDIS_HOST/PORT/DB: db 0 by
    default), shared with other tests and other engineers' runs.

    Nothing is ever flushed there: a test writes only under its own `redis_prefix` (or the
    keys it names and deletes itself), and `redis_prefix` deletes exactly those keys.
    """
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return REDIS_URL


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; every key under it is deleted after the test."""
    prefix = f"fm-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis_asyncio.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=STORE_DATABASES)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """URL (async driver) of a fresh, empty store database, once per kind of database.

    SQLite in tmp_path; PostgreSQL and MariaDB databases named fm_store_<hex>, dropped after
    the test. Open it with `tests.databases.store_engine(url)`.
    """
    async with fresh_store_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=STORE_DATABASES)
async def migrated_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """As `store_url`, with the database migrated to Alembic's head."""
    async with fresh_store_database(request.param, tmp_path) as url:
        await migrate_to_head(url)
        yield url


@pytest.fixture
async def store(migrated_store_url: str) -> AsyncIterator[Store]:
    """The unit of work over a fresh, migrated database of each kind."""
    opened = Store(create_engine(Settings(_env_file=None, database_url=migrated_store_url)))
    try:
        yield opened
    finally:
        await opened.close()

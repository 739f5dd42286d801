"""Fixtures shared by the whole suite: each test gets its own database and Redis keyspace."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis_asyncio

from tests.databases import (
    STORE_DATABASES,
    fresh_store_database,
    migrate_to_head,
    postgres_database,
    postgres_database_url,
)
from tests.servers import REDIS_HOST, REDIS_PORT, require_service


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """URL of a fresh, empty PostgreSQL database that is dropped after the test."""
    async with postgres_database("fm_test") as name:
        yield postgres_database_url(name)


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """URL of a Redis logical database that is empty at the start and flushed at the end.

    Each pytest-xdist worker gets its own database number, so parallel tests never share keys.
    """
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{8 + int(worker or 0) % 8}"
    client = redis_asyncio.Redis.from_url(url)
    await client.flushdb()
    yield url
    await client.flushdb()
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

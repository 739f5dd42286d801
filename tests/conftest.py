"""Fixtures shared by the whole suite: each test gets its own database and Redis keyspace."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from tests.services import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    POSTGRES_USER,
    REDIS_HOST,
    REDIS_PORT,
    require_service,
)

_ADMIN_DSN = f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """URL of a fresh, empty PostgreSQL database that is dropped after the test."""
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    name = f"fm_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    admin = await asyncpg.connect(_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


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

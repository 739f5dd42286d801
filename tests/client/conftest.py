"""A running service (with its embedded worker) on a fresh PostgreSQL store, and a connection
of the application's own to the same database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.api.support import api_settings, serve
from tests.databases import fresh_store_database


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh PostgreSQL store (async driver URL); the service migrates it as it starts."""
    async with fresh_store_database("postgresql", tmp_path) as url:
        yield url


@pytest.fixture
def dsn(database_url: str) -> str:
    """The store's URL as an application's asyncpg connects to it."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The service over the store: it migrates it, and its worker runs what is queued."""
    async with serve(api_settings(database_url)) as client:
        yield client


@pytest.fixture
async def connection(client: httpx.AsyncClient, dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """The application's connection, once the service has migrated the store."""
    opened = await asyncpg.connect(dsn)
    try:
        yield opened
    finally:
        await opened.close()

"""A running app per test, on a fresh SQLite or PostgreSQL store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.api.support import As, admin_of, api_settings, serve
from tests.databases import fresh_store_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty store; the app migrates it as it starts."""
    async with fresh_store_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return api_settings(database_url)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings) as client:
        yield client


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> As:
    """The ADMIN_API_KEY's caller, in a test whose `settings` turn authentication on with it
    (`tests.api.support.auth_settings`)."""
    return await admin_of(client)

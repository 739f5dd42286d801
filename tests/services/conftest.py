"""A service container per test, on each kind of store database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from app.services.container import Services
from app.settings import Settings
from tests.services import sample_tasks


@asynccontextmanager
async def opened_services(url: str, **overrides: Any) -> AsyncIterator[Services]:
    """A process's service container on the store at `url` with the sample tasks loaded;
    `overrides`: settings besides the tests' defaults."""
    values: dict[str, Any] = {
        "database_url": url,
        "migrate_on_start": False,
        "task_modules": ["tests.services.sample_tasks"],
        "poll_interval": 0.05,
    }
    services = await Services.open(Settings(_env_file=None, **(values | overrides)))
    try:
        yield services
    finally:
        await services.close(grace=0)


@pytest.fixture(autouse=True)
def fresh_sample_tasks() -> None:
    """What the sample tasks recorded is the test's own."""
    sample_tasks.calls.clear()
    sample_tasks.failures_left.clear()
    sample_tasks.gates.clear()


@pytest.fixture
async def services(migrated_store_url: str) -> AsyncIterator[Services]:
    async with opened_services(migrated_store_url) as opened:
        yield opened

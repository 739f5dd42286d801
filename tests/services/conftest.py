"""A service container per test, on each kind of store database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.services.container import Services
from app.settings import Settings
from tests.services import sample_tasks


@pytest.fixture
async def services(migrated_store_url: str) -> AsyncIterator[Services]:
    sample_tasks.calls.clear()
    sample_tasks.failures_left.clear()
    sample_tasks.gates.clear()
    settings = Settings(
        _env_file=None,
        database_url=migrated_store_url,
        migrate_on_start=False,
        task_modules=["tests.services.sample_tasks"],
        poll_interval=0.05,
    )
    opened = await Services.open(settings)
    yield opened
    await opened.close(grace=0)

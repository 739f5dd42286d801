"""The service container on SQLite: one process per store, and it says so."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.errors import SingleProcessStoreError
from app.services.container import Services
from app.settings import Settings


def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'flows.db'}")


async def register_process(services: Services, pid: int) -> None:
    async with services.store.write() as tx:
        now = datetime.now(UTC)
        await tx.workers.register(f"other:{pid}", socket.gethostname(), pid, now)


async def test_a_second_live_process_on_one_sqlite_store_is_refused(tmp_path: Path) -> None:
    services = await Services.open(sqlite_settings(tmp_path))
    try:
        await register_process(services, os.getppid())  # alive: it runs this test

        with pytest.raises(SingleProcessStoreError, match="SQLite is single-process"):
            await services.start()
    finally:
        await services.close(grace=0)


async def test_the_row_of_a_dead_process_does_not_block_a_restart(tmp_path: Path) -> None:
    exited = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await exited.wait()
    services = await Services.open(sqlite_settings(tmp_path))
    try:
        await register_process(services, exited.pid)  # it crashed without deregistering

        await services.start()

        async with services.store.read() as tx:
            registered = {worker.id for worker in await tx.workers.all()}
        assert services.heartbeat.worker_id in registered
    finally:
        await services.close(grace=0)

"""Locks that make one process of many do a job: on PostgreSQL and MariaDB another
connection (another process) does not get a held lock, and does once it is let go."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.settings import Settings
from app.store.database import create_engine
from app.store.unit_of_work import Store
from tests.polling import until

REPO_ROOT = Path(__file__).resolve().parents[2]
# A process that takes the lock "job", says so, and holds it until it is killed.
HOLDER = """
import asyncio, sys
from app.settings import Settings
from app.store.unit_of_work import Store

async def main() -> None:
    store = Store.of_settings(Settings(_env_file=None, database_url=sys.argv[1]))
    async with store.try_lock("job") as held:
        print("held" if held else "refused", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.fixture
async def two_stores(migrated_store_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores of one database, as two processes have: their own pools."""
    stores = [
        Store(create_engine(Settings(_env_file=None, database_url=migrated_store_url)))
        for _ in range(2)
    ]
    try:
        yield stores[0], stores[1]
    finally:
        for store in stores:
            await store.close()


async def test_a_held_lock_is_refused_elsewhere_until_let_go(
    two_stores: tuple[Store, Store],
) -> None:
    first, second = two_stores
    if first.dialect == "sqlite":
        pytest.skip("SQLite is one process: its locks are always had")

    async with first.try_lock("job") as held:
        assert held
        async with second.try_lock("job") as also:
            assert not also
        async with second.try_lock("another job") as other:
            assert other  # locks are by name

    async with second.try_lock("job") as held_now:
        assert held_now


async def test_on_sqlite_the_one_process_always_holds_it(
    two_stores: tuple[Store, Store],
) -> None:
    store, _ = two_stores
    if store.dialect != "sqlite":
        pytest.skip("servers' locks are exclusive: the test above")
    async with store.try_lock("job") as held:
        assert held


async def test_a_lock_goes_with_a_process_killed_while_holding_it(
    migrated_store_url: str, two_stores: tuple[Store, Store]
) -> None:
    store, _ = two_stores
    if store.dialect == "sqlite":
        pytest.skip("SQLite is one process: its locks are always had")
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, migrated_store_url,
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        async with asyncio.timeout(30):
            assert await holder.stdout.readline() == b"held\n"
        async with store.try_lock("job") as held:
            assert not held
    finally:
        holder.send_signal(signal.SIGKILL)  # no release: the server drops its connection
        await holder.wait()

    async def taken_over() -> bool:
        async with store.try_lock("job") as held:
            return held

    await until(taken_over)

"""Claims on the stores several processes share: concurrent claimers skip each other's locked
runs instead of waiting. What every store does with claims and leases is in the contract
suite (tests/store/contract/)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.records import Claim, NewRunRow
from app.domain.runs import RunStatus
from app.store.database import session_factory
from app.store.queries import queue, runs
from tests.databases import fresh_store_database, migrate_to_head, store_engine
from tests.store.samples import T0, add_definition

LEASE = 30.0


@pytest.fixture(params=["postgresql", "mariadb"])
async def shared_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """A store that several processes share (SQLite is single-process)."""
    async with fresh_store_database(request.param, tmp_path) as url:
        await migrate_to_head(url)
        async with store_engine(url) as opened:
            yield opened


async def add_runs(engine: AsyncEngine, count: int) -> list[str]:
    """`count` queued runs of one flow, created a second apart, oldest first."""
    definition_id = await add_definition(engine)
    async with session_factory(engine).begin() as session:
        ids = [f"run-{index}" for index in range(count)]
        for index, run_id in enumerate(ids):
            created_at = T0 + timedelta(seconds=index)
            await runs.create(
                session,
                NewRunRow(run_id, "f", definition_id, RunStatus.QUEUED, {}, [], None, created_at),
            )
    return ids


async def claim(engine: AsyncEngine, owner: str, now: datetime, limit: int = 10) -> list[Claim]:
    async with engine.begin() as connection:
        claims, _watched_started = await queue.claim(connection, owner, now, LEASE, limit)
        return claims


async def test_concurrent_claimers_skip_locked_runs_instead_of_waiting(
    shared_engine: AsyncEngine,
) -> None:
    ids = await add_runs(shared_engine, 4)
    async with shared_engine.begin() as first:
        mine, _ = await queue.claim(first, "w1", T0, LEASE, 2)  # locked until this commits
        async with asyncio.timeout(5):  # a waiting claim would block here until the commit
            theirs = await claim(shared_engine, "w2", T0, limit=10)

    assert [c.run_id for c in mine] == ids[:2]
    assert [c.run_id for c in theirs] == ids[2:]
    assert await claim(shared_engine, "w3", T0) == []

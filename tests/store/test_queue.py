"""Claims on the stores several processes share: concurrent claimers skip each other's locked
runs instead of waiting. What every store does with claims and leases is in the contract
suite (tests/store/contract/)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.concurrency import RunConcurrency
from app.domain.records import Claim, NewRunRow
from app.domain.runs import RunStatus
from app.store.database import session_factory
from app.store.models import CONCURRENCY_KEYS
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


async def add_runs(
    engine: AsyncEngine, count: int, concurrency: RunConcurrency | None = None
) -> list[str]:
    """`count` queued runs of one flow, created a second apart, oldest first."""
    definition_id = await add_definition(engine)
    async with session_factory(engine).begin() as session:
        ids = [f"run-{index}" for index in range(count)]
        for index, run_id in enumerate(ids):
            created_at = T0 + timedelta(seconds=index)
            await runs.create(
                session,
                NewRunRow(
                    run_id,
                    "f",
                    definition_id,
                    RunStatus.QUEUED,
                    {},
                    [],
                    None,
                    created_at,
                    concurrency=concurrency,
                ),
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


async def finish(engine: AsyncEngine, run_ids: list[str]) -> None:
    async with engine.begin() as connection:
        for run_id in run_ids:
            changed = await runs.change_status(
                connection, run_id, RunStatus.COMPLETED, only_from=[RunStatus.RUNNING]
            )
            assert changed


async def test_concurrent_claimers_never_take_more_runs_of_a_key_than_its_limit(
    shared_engine: AsyncEngine,
) -> None:
    ids = await add_runs(shared_engine, 12, RunConcurrency.of("f", None, 3))
    claimed: list[str] = []

    for _ in range(len(ids)):  # at least one run a round: the claimer holding the key takes
        claimers = [claim(shared_engine, f"w{index}", T0, limit=5) for index in range(6)]
        rounds = await asyncio.gather(*claimers)
        taken = [c.run_id for found in rounds for c in found]
        assert 0 < len(taken) <= 3
        claimed += taken
        await finish(shared_engine, taken)
        if len(claimed) == len(ids):
            break

    assert sorted(claimed) == sorted(ids)  # each run once


async def test_workers_claiming_and_finishing_together_stay_within_the_limit(
    shared_engine: AsyncEngine,
) -> None:
    ids = await add_runs(shared_engine, 40, RunConcurrency.of("f", None, 3))
    claimed: list[str] = []
    in_flight = peak = 0

    async def worker(owner: str) -> None:
        nonlocal in_flight, peak
        while len(claimed) < len(ids):
            taken = [c.run_id for c in await claim(shared_engine, owner, T0, limit=2)]
            # Counted from the claim's commit until before the finish's: never more than the
            # store holds running.
            in_flight += len(taken)
            peak = max(peak, in_flight)
            claimed.extend(taken)
            await asyncio.sleep(0)
            in_flight -= len(taken)
            if taken:
                await finish(shared_engine, taken)

    async with asyncio.timeout(60):
        await asyncio.gather(*(worker(f"w{index}") for index in range(4)))

    assert sorted(claimed) == sorted(ids)
    assert peak <= 3


async def test_a_key_whose_lock_row_was_lost_gets_it_back(shared_engine: AsyncEngine) -> None:
    (run_id,) = await add_runs(shared_engine, 1, RunConcurrency.of("f", None, 1))
    async with shared_engine.begin() as connection:
        await connection.execute(delete(CONCURRENCY_KEYS))  # as a restored backup might

    assert await claim(shared_engine, "w1", T0) == []  # the row is added back
    assert [c.run_id for c in await claim(shared_engine, "w1", T0)] == [run_id]

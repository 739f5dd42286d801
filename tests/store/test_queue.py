"""The run queue on each store: claims, leases, renewal, release, and the lease check of writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.records import Claim, NewRunRow
from app.domain.runs import RunStatus
from app.errors import LeaseLostError
from app.store.database import session_factory
from app.store.models import FlowRunRow
from app.store.queries import queue, runs
from tests.databases import fresh_store_database, migrate_to_head, store_engine
from tests.store.samples import T0, add_definition

LEASE = 30.0


@pytest.fixture
async def engine(migrated_store_url: str) -> AsyncIterator[AsyncEngine]:
    async with store_engine(migrated_store_url) as opened:
        yield opened


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
        return await queue.claim(connection, owner, now, LEASE, limit)


async def lease_of(engine: AsyncEngine, run_id: str) -> tuple[str, str | None, datetime | None]:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(
                    FlowRunRow.status, FlowRunRow.lease_owner, FlowRunRow.lease_expires_at
                ).where(FlowRunRow.id == run_id)
            )
        ).one()
    return row.status, row.lease_owner, row.lease_expires_at


async def test_a_claim_takes_queued_runs_oldest_first_and_leases_them(engine: AsyncEngine) -> None:
    ids = await add_runs(engine, 3)

    claimed = await claim(engine, "w1", T0, limit=2)

    assert [(c.run_id, not c.taken_over) for c in claimed] == [(ids[0], True), (ids[1], True)]
    assert await lease_of(engine, ids[0]) == ("running", "w1", T0 + timedelta(seconds=LEASE))
    assert [c.run_id for c in await claim(engine, "w2", T0)] == [ids[2]]
    assert await claim(engine, "w3", T0) == []


async def test_a_run_whose_lease_expired_is_taken_over(engine: AsyncEngine) -> None:
    (run_id,) = await add_runs(engine, 1)
    await claim(engine, "w1", T0)

    assert await claim(engine, "w2", T0 + timedelta(seconds=LEASE - 1)) == []
    (taken,) = await claim(engine, "w2", T0 + timedelta(seconds=LEASE))

    assert (taken.run_id, not taken.taken_over) == (run_id, False)
    assert (await lease_of(engine, run_id))[1] == "w2"


async def test_writes_need_the_unexpired_lease_of_a_running_run(engine: AsyncEngine) -> None:
    (run_id,) = await add_runs(engine, 1)
    await claim(engine, "w1", T0)
    sessions = session_factory(engine)

    async with sessions.begin() as session:
        await queue.hold(session, run_id, "w1", T0 + timedelta(seconds=1))
    for owner, at in [("w2", T0), ("w1", T0 + timedelta(seconds=LEASE))]:
        with pytest.raises(LeaseLostError, match=run_id):
            async with sessions.begin() as session:
                await queue.hold(session, run_id, owner, at)
    async with sessions.begin() as session:
        await runs.end(session, run_id, RunStatus.CANCELLED, T0)
    with pytest.raises(LeaseLostError):
        async with sessions.begin() as session:
            await queue.hold(session, run_id, "w1", T0)


async def test_renewal_extends_held_leases_and_reports_lost_runs(engine: AsyncEngine) -> None:
    kept, taken, cancelled = await add_runs(engine, 3)
    await claim(engine, "w1", T0)
    async with session_factory(engine).begin() as session:  # as another worker's takeover
        await runs.change_status(
            session, taken, RunStatus.RUNNING, only_from=[RunStatus.RUNNING], lease_owner="w2"
        )
        await runs.end(session, cancelled, RunStatus.CANCELLED, T0)  # by a request
    later = T0 + timedelta(seconds=10)

    async with engine.begin() as connection:
        lost = await queue.renew(connection, "w1", [kept, taken, cancelled], later, LEASE)

    assert lost == {taken, cancelled}
    assert await lease_of(engine, kept) == ("running", "w1", later + timedelta(seconds=LEASE))


async def test_a_released_run_is_claimable_at_once_and_resumes(engine: AsyncEngine) -> None:
    (run_id,) = await add_runs(engine, 1)
    await claim(engine, "w1", T0)

    async with engine.begin() as connection:
        await queue.release(connection, "w1", [run_id], T0)
    (taken,) = await claim(engine, "w2", T0)

    assert (taken.run_id, not taken.taken_over) == (run_id, False)


async def test_concurrent_claimers_skip_locked_runs_instead_of_waiting(
    shared_engine: AsyncEngine,
) -> None:
    ids = await add_runs(shared_engine, 4)
    async with shared_engine.begin() as first:
        mine = await queue.claim(first, "w1", T0, LEASE, 2)  # locked until this commits
        async with asyncio.timeout(5):  # a waiting claim would block here until the commit
            theirs = await claim(shared_engine, "w2", T0, limit=10)

    assert [c.run_id for c in mine] == ids[:2]
    assert [c.run_id for c in theirs] == ids[2:]
    assert await claim(shared_engine, "w3", T0) == []

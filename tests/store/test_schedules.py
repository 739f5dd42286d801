"""The schedules topic of the unit of work on SQLite, PostgreSQL and MariaDB: the scheduler's
due rows, locked and skipped; a tick's run and the row's advance committed together or not
at all; one run per tick key; the declared schedules replaced, the API's kept; a flow's
deletion taking its schedules along."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from app.domain.records import Creation, NewRunRow
from app.domain.runs import RunStatus
from app.domain.schedules import Cron, Overlap, ScheduleOrigin, ScheduleRecord, tick_key
from app.store.models import FLOWS, RUNS
from app.store.unit_of_work import Store
from tests.store.samples import add_definition, owner_of

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def record(
    next_fire_at: datetime | None,
    *,
    enabled: bool = True,
    origin: ScheduleOrigin = ScheduleOrigin.API,
    flow: str = "f",
) -> ScheduleRecord:
    return ScheduleRecord(
        schedule_id=str(uuid.uuid4()),
        flow=flow,
        cron=Cron("* * * * *"),
        inputs={"n": 1},
        overlap=Overlap.SKIP,
        enabled=enabled,
        origin=origin,
        created_by=owner_of(flow),
        created_at=NOW,
        updated_at=NOW,
        next_fire_at=next_fire_at,
    )


async def added(store: Store, *records: ScheduleRecord) -> list[str]:
    async with store.write() as tx:
        for made in records:
            await tx.schedules.add(made)
    return [made.schedule_id for made in records]


def tick_run(definition_id: int, schedule: ScheduleRecord, tick: datetime) -> NewRunRow:
    return NewRunRow(
        run_id=str(uuid.uuid4()),
        flow_name=schedule.flow,
        definition_id=definition_id,
        status=RunStatus.QUEUED,
        inputs={},
        step_ids=["s"],
        idempotency_key=tick_key(schedule.schedule_id, tick),
        created_at=NOW,
        latest_only=True,
        created_by=schedule.created_by,
    )


async def run_count(store: Store) -> int:
    async with store.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(RUNS)) or 0)


async def test_lock_due_takes_enabled_rows_past_their_tick_most_overdue_first(
    store: Store,
) -> None:
    await add_definition(store.engine)
    late, later, _, _, _ = await added(
        store,
        record(NOW - MINUTE),
        record(NOW - 2 * MINUTE),
        record(NOW + MINUTE),
        record(None, enabled=False),
        record(NOW - MINUTE, enabled=False),
    )

    async with store.write() as tx:
        due = await tx.schedules.lock_due(NOW, 10)

    assert [found.schedule_id for found in due] == [later, late]


async def test_rows_another_round_holds_are_skipped(store: Store) -> None:
    if store.dialect == "sqlite":
        pytest.skip("SQLite is one process: its write transactions follow one another")
    await add_definition(store.engine)
    ids = await added(store, *(record(NOW - MINUTE) for _ in range(3)))
    held = asyncio.Event()
    release = asyncio.Event()

    async def first_round() -> list[str]:
        async with store.write() as tx:
            taken = await tx.schedules.lock_due(NOW, 2)
            held.set()
            await release.wait()
        return [found.schedule_id for found in taken]

    first = asyncio.create_task(first_round())
    await held.wait()
    async with store.write() as tx:
        second = [found.schedule_id for found in await tx.schedules.lock_due(NOW, 10)]
    release.set()

    assert sorted(await first + second) == sorted(ids)
    assert len(second) == 1


async def test_a_ticks_run_and_the_rows_advance_commit_together_or_not_at_all(
    store: Store,
) -> None:
    definition_id = await add_definition(store.engine)
    schedule = record(NOW - MINUTE)
    await added(store, schedule)

    async def round_that_dies() -> None:
        async with store.write() as tx:
            [due] = await tx.schedules.lock_due(NOW, 10)
            run = tick_run(definition_id, due, NOW)
            assert await tx.schedules.start_run(run) is Creation.CREATED
            await tx.schedules.fired(due.schedule_id, NOW, NOW + MINUTE, run.run_id, None)
            raise RuntimeError("the process died before its commit")

    with pytest.raises(RuntimeError):
        await round_that_dies()

    assert await run_count(store) == 0
    async with store.read() as tx:
        found = await tx.schedules.get(schedule.schedule_id)
    assert found is not None
    assert (found.next_fire_at, found.last_run_id) == (NOW - MINUTE, None)


async def test_a_tick_key_makes_one_run(store: Store) -> None:
    definition_id = await add_definition(store.engine)
    schedule = record(NOW)
    await added(store, schedule)

    async with store.write() as tx:
        first = await tx.schedules.start_run(tick_run(definition_id, schedule, NOW))
    async with store.write() as tx:
        again = await tx.schedules.start_run(tick_run(definition_id, schedule, NOW))

    assert (first, again) == (Creation.CREATED, Creation.KEY_TAKEN)
    assert await run_count(store) == 1


async def test_a_version_is_current_until_a_newer_one_is_registered(store: Store) -> None:
    old = await add_definition(store.engine, "f", 1)
    async with store.read() as tx:
        assert await tx.schedules.is_current(old)
    new = await add_definition(store.engine, "f", 2)

    async with store.read() as tx:
        assert (await tx.schedules.is_current(old), await tx.schedules.is_current(new)) == (
            False,
            True,
        )


async def test_a_new_versions_schedules_replace_the_declared_and_keep_the_apis(
    store: Store,
) -> None:
    await add_definition(store.engine)
    [api] = await added(store, record(NOW))
    await added(store, record(NOW, origin=ScheduleOrigin.DEFINITION))
    newer = replace(record(NOW, origin=ScheduleOrigin.DEFINITION), cron=Cron("0 * * * *"))

    async with store.write() as tx:
        await tx.schedules.replace_declared("f", [newer])
    async with store.read() as tx:
        left = await tx.schedules.of_flow("f")

    assert sorted(found.schedule_id for found in left) == sorted([api, newer.schedule_id])


async def test_deleting_a_flow_deletes_its_schedules(store: Store) -> None:
    await add_definition(store.engine)
    [schedule_id] = await added(store, record(NOW))

    async with store.engine.begin() as connection:
        await connection.execute(delete(FLOWS).where(FLOWS.c.name == "f"))
    async with store.read() as tx:
        assert await tx.schedules.get(schedule_id) is None

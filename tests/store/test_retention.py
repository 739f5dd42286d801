"""The statements of retention (`queries/retention.py`), on each store database: which runs a
batch deletes, with what, and how many at a time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text, update

from app.domain.runs import RunStatus
from app.store.models import RUNS
from app.store.queries.retention import Batch
from app.store.unit_of_work import Store
from tests.polling import until
from tests.store.samples import T0, add_definition, add_run, rows_of_runs

DAY = timedelta(days=1)


async def delete_batch(store: Store, flow: str, before_days: int, limit: int) -> int:
    async with store.write() as tx:
        return (await tx.pruning.delete_batch(flow, T0 + before_days * DAY, limit)).deleted


async def test_a_batch_deletes_finished_runs_before_the_cutoff_with_all_they_hold(
    store: Store,
) -> None:
    definition = await add_definition(store.engine)
    old = [
        await add_run(store.engine, definition, status, T0)
        for status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
    ]
    in_flight = [
        await add_run(store.engine, definition, status, T0)
        for status in (RunStatus.QUEUED, RunStatus.RUNNING)
    ]
    recent = [await add_run(store.engine, definition, RunStatus.COMPLETED, T0 + 10 * DAY)]

    assert await delete_batch(store, "f", before_days=5, limit=100) == 3

    assert await rows_of_runs(store.engine, old) == {
        "flow_runs": 0,
        "task_runs": 0,
        "task_logs": 0,
        "run_events": 0,
    }
    kept = in_flight + recent
    assert await rows_of_runs(store.engine, kept) == {
        "flow_runs": 3,
        "task_runs": 3,
        "task_logs": 3,
        "run_events": 3,
    }


async def test_a_batch_deletes_at_most_its_size_oldest_first(store: Store) -> None:
    definition = await add_definition(store.engine)
    runs = [
        await add_run(store.engine, definition, RunStatus.COMPLETED, T0 + day * DAY)
        for day in range(5)
    ]

    counts = [await delete_batch(store, "f", before_days=30, limit=2) for _ in range(4)]

    assert counts == [2, 2, 1, 0]  # five runs in three batches; the fourth finds none
    assert (await rows_of_runs(store.engine, runs))["flow_runs"] == 0


async def test_a_batch_says_whether_more_may_wait(store: Store) -> None:
    definition = await add_definition(store.engine)
    for day in range(3):
        await add_run(store.engine, definition, RunStatus.COMPLETED, T0 + day * DAY)

    async with store.write() as tx:
        assert await tx.pruning.delete_batch("f", T0 + 30 * DAY, 2) == Batch(2, more=True)
    async with store.write() as tx:
        assert await tx.pruning.delete_batch("f", T0 + 30 * DAY, 2) == Batch(1, more=False)


async def test_big_runs_make_smaller_batches_and_a_run_bigger_than_one_goes_alone(
    store: Store,
) -> None:
    definition = await add_definition(store.engine)
    sizes = (5, 2, 2, 2, 1)  # tasks per run, oldest first
    runs = [
        await add_run(store.engine, definition, RunStatus.COMPLETED, T0 + day * DAY, tasks=tasks)
        for day, tasks in enumerate(sizes)
    ]

    batches = []
    for _ in sizes:
        async with store.write() as tx:
            batch = await tx.pruning.delete_batch("f", T0 + 30 * DAY, 10, max_tasks=4)
        batches.append(batch)
        if not batch.more:
            break

    # 5 tasks: alone; 2 + 2: four tasks; 2 + 1: the rest.
    assert batches == [Batch(1, more=True), Batch(2, more=True), Batch(2, more=False)]
    assert await rows_of_runs(store.engine, runs) == dict.fromkeys(
        ("flow_runs", "task_runs", "task_logs", "run_events"), 0
    )


async def test_the_oldest_go_first(store: Store) -> None:
    definition = await add_definition(store.engine)
    runs = [
        await add_run(store.engine, definition, RunStatus.COMPLETED, T0 + day * DAY)
        for day in (3, 1, 2)
    ]

    assert await delete_batch(store, "f", before_days=30, limit=2) == 2

    assert (await rows_of_runs(store.engine, [runs[0]]))["flow_runs"] == 1  # day 3, the newest


async def test_a_batch_touches_its_own_flow_only(store: Store) -> None:
    mine = await add_definition(store.engine, "mine")
    theirs = await add_definition(store.engine, "theirs")
    kept = await add_run(store.engine, theirs, RunStatus.COMPLETED, T0, flow="theirs")
    await add_run(store.engine, mine, RunStatus.COMPLETED, T0, flow="mine")

    assert await delete_batch(store, "mine", before_days=1, limit=10) == 1

    assert (await rows_of_runs(store.engine, [kept]))["flow_runs"] == 1


async def test_newest_kept_is_the_creation_of_the_nth_newest_finished_run(store: Store) -> None:
    definition = await add_definition(store.engine)
    for day in range(5):
        await add_run(store.engine, definition, RunStatus.COMPLETED, T0 + day * DAY)
    await add_run(store.engine, definition, RunStatus.RUNNING, T0 + 9 * DAY)  # not counted

    async with store.read() as tx:
        assert await tx.pruning.newest_kept("f", 2) == T0 + 3 * DAY
        assert await tx.pruning.newest_kept("f", 5) == T0
        assert await tx.pruning.newest_kept("f", 6) is None


async def test_each_flows_latest_version_and_its_document(store: Store) -> None:
    first = await add_definition(store.engine, "a", 1, {"retention": {"days": 1}})
    second = await add_definition(store.engine, "a", 2, {"retention": {"max_runs": 4}})
    other = await add_definition(store.engine, "b")

    async with store.read() as tx:
        latest = await tx.pruning.latest_versions()
        documents = await tx.pruning.documents([second, first])

    assert latest == [("a", second), ("b", other)]
    assert documents[second] == {"retention": {"max_runs": 4}}
    assert documents[first] == {"retention": {"days": 1}}


async def test_a_run_retried_while_a_batch_deletes_it_stays(store: Store) -> None:
    """The batch read the run failed; a retry made it running before the deletion took its
    row: the deletion checks the status again and leaves it."""
    if store.dialect != "postgresql":
        pytest.skip("the wait is observed in pg_stat_activity; the statement is the same")
    definition = await add_definition(store.engine)
    run_id = await add_run(store.engine, definition, RunStatus.FAILED, T0)
    retry = update(RUNS).where(RUNS.c.id == run_id).values(status=RunStatus.RUNNING.value)

    async with store.engine.connect() as retrying:
        await retrying.execute(retry)  # holds the row until it commits
        deleting = asyncio.create_task(delete_batch(store, "f", before_days=5, limit=10))

        async def deletion_waits() -> bool:
            async with store.engine.connect() as watcher:
                waiting = await watcher.scalar(text(_WAITING_ON_A_LOCK))
            return bool(waiting)

        await until(deletion_waits)
        await retrying.commit()

    assert await deleting == 0
    assert (await rows_of_runs(store.engine, [run_id]))["flow_runs"] == 1


_WAITING_ON_A_LOCK = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'DELETE%'
"""

"""The scrape-time counts (`queries/gauges.py`), on each store database."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from app.domain.runs import RunStatus, TaskStatus
from app.store.models import TASKS
from app.store.unit_of_work import Store
from tests.store.samples import T0, add_definition, add_run

SECOND = timedelta(seconds=1)


async def test_ready_tasks_are_the_queued_tasks_due_and_queued_runs_are_counted(
    store: Store,
) -> None:
    definition = await add_definition(store.engine)
    running = await add_run(store.engine, definition, RunStatus.RUNNING, T0, tasks=5)
    for run_status in (RunStatus.QUEUED, RunStatus.QUEUED, RunStatus.COMPLETED):
        await add_run(store.engine, definition, run_status, T0)
    due = {0: T0, 1: T0 - SECOND, 2: T0 + SECOND}  # task index -> available at
    async with store.engine.begin() as connection:
        for index, available_at in due.items():
            await connection.execute(
                update(TASKS)
                .where(TASKS.c.run_id == running, TASKS.c.task_index == index)
                .values(status=TaskStatus.QUEUED.value, available_at=available_at)
            )

    async with store.read() as tx:
        depth = await tx.gauges.depth(T0, T0, cap=100)
        capped = await tx.gauges.depth(T0, T0, cap=1)

    assert (depth.queued_runs, depth.ready_tasks) == (2, 2)  # index 2 is not due yet
    assert (capped.queued_runs, capped.ready_tasks) == (1, 1)

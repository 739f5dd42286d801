"""A run's progress reported within one group commit, as the engine reports it, and the rows
it leaves: the cases the fast paths' merged writes are compared on, against the same progress
written one statement per transition (tests/store/test_postgres_path.py, test_sqlite_path.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.records import AttemptLog, Creation, LogLine, NewRunRow
from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus
from app.engine.store import NewRun, RunEnd, TaskFinish
from app.store.models import RUNS, TASK_LOGS, TASKS
from app.store.run_store import SqlRunStore
from tests.store.samples import T0

# A run's progress reported within one group commit, as the engine reports it: each case is a
# start (or none) and finishes, the last of which is waited for. Times are fixed, so two runs
# given the same progress must end with the same rows.
STEPS = ["a", "b", "c", "d"]
AT = [T0 + timedelta(seconds=n) for n in range(10)]
LOG = AttemptLog(1, (LogLine(AT[2], "info", "said"),), truncated=False)


def done(
    step_id: str,
    at: int,
    *,
    status: TaskStatus = TaskStatus.COMPLETED,
    released: tuple[str, ...] = (),
    end: RunStatus | None = None,
    log: AttemptLog | None = None,
    pure: bool = True,
) -> TaskFinish:
    error = RunError(step_id, "Boom", "broke") if status is TaskStatus.FAILED else None
    outputs = None if error else {step_id: at}
    ended = None if end is None else RunEnd(end, None if error else {"z": at}, error, AT[at])
    return TaskFinish(
        TaskKey(step_id), status, outputs, error, AT[at], released, ended=ended, log=log,
        pure=pure,
    )  # fmt: skip


PROGRESS: dict[str, tuple[list[str] | None, list[TaskFinish]]] = {
    "a chain to its end": (
        ["a"],
        [done("a", 1, released=("b",)), done("b", 2, released=("c",), log=LOG),
         done("c", 3, released=("d",)), done("d", 4, end=RunStatus.COMPLETED)],
    ),
    "a failure that ends the run while a released step waits": (
        ["a", "b"],
        [done("a", 1, released=("c",)), done("b", 2, status=TaskStatus.FAILED,
         end=RunStatus.FAILED)],
    ),
    "a skipped step, then a step with effects (no end)": (
        ["a"],
        [done("a", 1, status=TaskStatus.SKIPPED, released=("b", "c")),
         done("b", 2, released=("d",), pure=False)],
    ),
    "a start, then a step with effects while two steps wait": (
        ["a"],
        [done("a", 1, released=("b",), pure=False)],
    ),
    "finishes without a start (a claimed run)": (
        None,
        [done("a", 1, released=("b",)), done("b", 2, released=("c",), pure=False)],
    ),
}  # fmt: skip


async def apply_progress(store: SqlRunStore, run_id: str, case: str) -> None:
    ready, finishes = PROGRESS[case]
    if ready is not None:
        await store.run_started(NewRun(run_id, "f", {"n": 1}, STEPS, ready, AT[0]))
    for finish in finishes[:-1]:
        await store.task_started(run_id, finish.key, 1, finish.at - timedelta(seconds=0.5))
        await store.task_finished(run_id, finish)
    await store.task_finished(run_id, finishes[-1])  # its start mark written on its own


async def rows_of(engine: AsyncEngine, run_id: str) -> dict[str, Any]:
    async with engine.connect() as connection:
        run = (await connection.execute(select(RUNS).where(RUNS.c.id == run_id))).one()
        tasks_ = (
            await connection.execute(
                select(TASKS).where(TASKS.c.run_id == run_id).order_by(TASKS.c.step_id)
            )
        ).all()
        logs = (
            await connection.execute(select(TASK_LOGS).where(TASK_LOGS.c.run_id == run_id))
        ).all()
    return {
        "run": {k: v for k, v in run._mapping.items() if k not in {"id", "watched"}},
        "tasks": [
            {k: v for k, v in t._mapping.items() if k not in {"id", "run_id"}} for t in tasks_
        ],
        "logs": [
            {k: v for k, v in log._mapping.items() if k not in {"id", "run_id"}} for log in logs
        ],
    }


async def created_both_ways(
    store: SqlRunStore, engine: AsyncEngine, created: NewRunRow, case: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rows of `created` (run "merged") created later, with the case's progress in the
    same batch, and of the same run ("one-by-one") created on its own, watched, so that its
    progress is written one transition at a time."""
    creation = store.create_later(replace(created, run_id="merged"))
    assert creation is not None
    await apply_progress(store, "merged", case)
    await store.committed("merged")
    assert await creation is Creation.CREATED
    await store.create(replace(created, run_id="one-by-one"))
    assert await store.watch("one-by-one") is not None
    await apply_progress(store, "one-by-one", case)
    await store.committed("one-by-one")
    return await rows_of(engine, "merged"), await rows_of(engine, "one-by-one")

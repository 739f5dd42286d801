"""Runs: creating one, reading them, ending one. The caller owns the transaction.

Creating a run is written twice, side by side: the portable statements (`create`), and
PostgreSQL's one statement (`PG_CREATE`) that also checks the version is current and the
idempotency key free, in one round trip. Ending a run is written once (`end`): the engine's
end of a run it holds, and the service's cancellation or failure of an active run, both.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, insert, select, update

from app.domain.records import Lineage, NewRunRow, StepRecord
from app.domain.runs import (
    ACTIVE_RUN_STATUSES,
    UNFINISHED_TASK_STATUSES,
    RunError,
    RunStatus,
    TaskStatus,
)
from app.store.models import RUNS, TASKS, USERS
from app.store.notifications import RUNS_QUEUED
from app.store.queries import events, queue
from app.store.session import Db

UNFINISHED_TASK_VALUES = sorted(status.value for status in UNFINISHED_TASK_STATUSES)
# The same set as SQL text, for PostgreSQL's statements (values of an enum: no user data).
PG_UNFINISHED = "(" + ", ".join(f"'{status}'" for status in UNFINISHED_TASK_VALUES) + ")"


# Creating a run, with one pending task per step, so it shows every step before it starts.


async def create(db: Db, run: NewRunRow) -> None:
    """The portable path: the caller checked the version (`versions.is_current`); a taken
    idempotency key raises the driver's integrity error."""
    await create_all(db, [run])


async def create_all(db: Db, runs: Sequence[NewRunRow]) -> None:
    """`create` for many runs at once: one insert of the runs, one of their tasks (a batch
    submitted in one request is one transaction of three statements, not three per run)."""
    await db.execute(insert(RUNS), [run_row(run) for run in runs])
    for key in sorted({run.concurrency.stored_key for run in runs if run.concurrency}):
        await queue.add_key(db, key)
    kept = [kept_task(run.run_id, task) for run in runs for task in run.kept_tasks]
    if kept:  # a fork's: copied as they finished in its source run
        await db.execute(insert(TASKS), kept)
    pending = [pending_task(run.run_id, step_id) for run in runs for step_id in run.step_ids]
    if pending:
        await db.execute(insert(TASKS), pending)


def pending_task(run_id: str, step_id: str) -> dict[str, Any]:
    """The row of a new run's task of a step: pending until the run starts."""
    return {"run_id": run_id, "step_id": step_id, "task_index": 0, "status": "pending"}


def run_row(run: NewRunRow) -> dict[str, Any]:
    return {
        "id": run.run_id,
        "flow_name": run.flow_name,
        "definition_id": run.definition_id,
        "status": run.status.value,
        "inputs": run.inputs,
        "remaining_steps": len(run.step_ids),
        "idempotency_key": run.idempotency_key,
        "created_at": run.created_at,
        "created_by": run.created_by,
        "lease_owner": run.lease_owner,
        "lease_expires_at": run.lease_expires_at,
        "traceparent": run.traceparent,
        "forked_from": run.forked_from,
        "parent_run_id": run.parent_run_id,
        "parent_step_id": run.parent_step_id,
        "depth": run.depth,
        "priority": run.priority,
        "concurrency_key": run.concurrency.stored_key if run.concurrency else None,
        "concurrency_limit": run.concurrency.limit if run.concurrency else None,
    }


def kept_task(run_id: str, task: StepRecord) -> dict[str, Any]:
    """The row of a task a fork keeps from its source run, as it finished there."""
    return {
        "run_id": run_id,
        "step_id": task.step_id,
        "task_index": task.task_index,
        "status": task.status.value,
        "attempts": task.attempts,
        "outputs": task.outputs,
        "error": error_value(task.error),
        "started_at": task.started_at,
        "finished_at": task.finished_at,
    }


def pg_create_arguments(run: NewRunRow, inputs: str) -> tuple[Any, ...]:
    """`PG_CREATE`'s parameters; `inputs` as JSON text."""
    return (
        run.run_id,
        run.flow_name,
        run.definition_id,
        run.status.value,
        inputs,
        list(run.step_ids),
        run.idempotency_key,
        run.created_at,
        run.lease_owner,
        run.lease_expires_at,
        run.latest_only,
        run.created_by,
        run.traceparent,
        run.priority,
        run.concurrency.stored_key if run.concurrency else None,
        run.concurrency.limit if run.concurrency else None,
    )


# PostgreSQL's: $1 run_id, $2 flow_name, $3 definition_id, $4 status, $5 inputs, $6 step ids in
# order, $7 idempotency key, $8 created_at, $9 lease owner, $10 lease expiry, $11 latest only,
# $12 the id of the user who starts it, $13 its traceparent, $14 its priority, $15 its stored
# concurrency key (null: none) and $16 that key's limit. Its `Creation`: nothing is written
# when the key is taken or the version stale (a newer one exists, with $11, or it was
# deleted). The key's lock row is added with the run (queries/queue.py). A queued run notifies
# the workers with its commit: PostgreSQL delivers one notification however many runs the
# transaction queued.
PG_CURRENT_VERSION = """version AS (
    SELECT definition.id FROM flow_definitions AS definition
    WHERE definition.id = $3 AND NOT ($11 AND EXISTS (
        SELECT 1 FROM flow_definitions AS newer
        WHERE newer.name = definition.name AND newer.version > definition.version
    ))
)"""
# What follows the run's insert (`run`): its concurrency key's row, and the `Creation`.
PG_CREATED = """concurrency_key AS (
    INSERT INTO concurrency_keys (name)
    SELECT $15::text FROM run WHERE $15::text IS NOT NULL
    ON CONFLICT (name) DO NOTHING
)
SELECT CASE WHEN EXISTS (SELECT 1 FROM run) THEN 'created'
    WHEN EXISTS (SELECT 1 FROM version) THEN 'key taken' ELSE 'stale' END"""
PG_CREATE = f"""
WITH {PG_CURRENT_VERSION}, run AS (
    INSERT INTO flow_runs (id, flow_name, definition_id, status, inputs, remaining_steps,
        idempotency_key, created_at, lease_owner, lease_expires_at, created_by, traceparent,
        priority, concurrency_key, concurrency_limit)
    SELECT $1, $2, version.id, $4, $5::jsonb, cardinality($6::text[]), $7, $8, $9, $10, $12,
        $13, $14, $15, $16
    FROM version
    ON CONFLICT (idempotency_key, flow_name, created_by) DO NOTHING
    RETURNING id, CASE WHEN $4 = 'queued' THEN pg_notify('{RUNS_QUEUED}', '') END
), tasks AS (
    INSERT INTO task_runs (run_id, step_id, task_index, status, attempts)
    SELECT run.id, step.id, 0, 'pending', 0
    FROM run, unnest($6::text[]) WITH ORDINALITY AS step(id, position)
    ORDER BY step.position
), {PG_CREATED}
"""


async def id_for_key(
    db: Db, idempotency_key: str, flow_name: str, created_by: str | None
) -> str | None:
    """The run an earlier request of the same caller on the same flow made with the key."""
    statement = select(RUNS.c.id).where(
        RUNS.c.idempotency_key == idempotency_key,
        RUNS.c.flow_name == flow_name,
        RUNS.c.created_by == created_by,
    )
    return (await db.execute(statement)).scalar_one_or_none()


async def launch_of(db: Db, run_id: str) -> tuple[int, str | None] | None:
    """(definition id, traceparent) of the run, to launch it again."""
    statement = select(RUNS.c.definition_id, RUNS.c.traceparent).where(RUNS.c.id == run_id)
    found = (await db.execute(statement)).one_or_none()
    return None if found is None else (found.definition_id, found.traceparent)


# Changing a run's status.


async def change_status(
    db: Db,
    run_id: str,
    status: RunStatus,
    *,
    only_from: Collection[RunStatus],
    **values: Any,
) -> bool:
    """Compare-and-set the run's status; False when it was not in `only_from`."""
    result = await db.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.status.in_([s.value for s in only_from]))
        .values(status=status.value, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# Ending a run: its end, its lease let go, its unfinished tasks cancelled. Only an active run
# ends: one already ended elsewhere (cancelled from another process) keeps its end.
_END = (
    update(RUNS)
    .where(
        RUNS.c.id == bindparam("run"),
        RUNS.c.status.in_([status.value for status in ACTIVE_RUN_STATUSES]),
    )
    .values(
        status=bindparam("state"),
        outputs=bindparam("result"),
        error=bindparam("failure"),
        finished_at=bindparam("at"),
        remaining_steps=0,
        lease_owner=None,
        lease_expires_at=None,
    )
)
_CANCEL_UNFINISHED = (  # built once: it ends every run
    update(TASKS)
    .where(TASKS.c.run_id == bindparam("run"), TASKS.c.status.in_(UNFINISHED_TASK_VALUES))
    # A shared fan-out's elements left to run leave the claim's index (queries/elements.py).
    .values(status=TaskStatus.CANCELLED.value, finished_at=bindparam("at"), lease_expires_at=None)
)
_CANCEL_UNFINISHED_OF_STEP = _CANCEL_UNFINISHED.where(TASKS.c.step_id == bindparam("step"))
# PostgreSQL's end, as part of a task's finish, is `tasks.PG_FINISH_TASK_AND_RUN`.


async def end(
    recorder: events.Recorder,
    run_id: str,
    status: RunStatus,
    at: datetime,
    *,
    outputs: Any = None,
    error: RunError | None = None,
) -> bool:
    """End an active run (queued or running) in the recorder's transaction, which holds the
    run's row; False when it had already ended. Its events: its tasks cancelled, then its
    end, the last of the run."""
    db = recorder.db
    failure = error_value(error)
    parameters = {
        "run": run_id,
        "state": status.value,
        "result": outputs,
        "failure": failure,
        "at": at,
    }
    ended = bool((await db.execute(_END, parameters)).rowcount)  # type: ignore[attr-defined]
    if ended:
        await cancel_unfinished_tasks(recorder, run_id, at)
        await recorder.record([events.run_event(run_id, status, at, failure)])
        if recorder.parent_run_id is not None:
            await wake_parent(db, recorder.parent_run_id, at)
    return ended


# A parked run woken (by its child's end, a signal): any worker resumes it now. A run held by
# a worker is left alone: it looks at its waits again before it parks (`waits.park`).
_WAKE_PARKED = (
    update(RUNS)
    .where(
        RUNS.c.id == bindparam("run"),
        RUNS.c.status == RunStatus.RUNNING.value,
        RUNS.c.lease_owner.is_(None),
        RUNS.c.lease_expires_at > bindparam("at"),
    )
    .values(lease_expires_at=bindparam("at"))
)


# A child's end wakes its parent if parked. Not `_WAKE_PARKED`: an update that matches no row
# locks none, and a parent parking meanwhile, not seeing this end uncommitted, would sleep on.
# This one locks the parent's row whatever it holds (a parking parent waits for this end's
# commit, and then sees it), and decides on the row as it is once locked.
_WAKE_PARENT = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("run"))
    .values(
        lease_expires_at=case(
            (
                and_(
                    RUNS.c.status == RunStatus.RUNNING.value,
                    RUNS.c.lease_owner.is_(None),
                    RUNS.c.lease_expires_at > bindparam("at"),
                ),
                bindparam("at"),
            ),
            else_=RUNS.c.lease_expires_at,
        )
    )
)


async def wake_parent(db: Db, run_id: str, at: datetime) -> None:
    """Wake the parent of a child run that ended or went, if it is parked (`_WAKE_PARENT`)."""
    await db.execute(_WAKE_PARENT, {"run": run_id, "at": at})


async def wake_parked(db: Db, run_id: str, at: datetime) -> bool:
    """Wake the run if it is parked; whether it was."""
    woken = await db.execute(_WAKE_PARKED, {"run": run_id, "at": at})
    return bool(woken.rowcount)  # type: ignore[attr-defined]


async def cancel_unfinished_tasks(
    recorder: events.Recorder, run_id: str, at: datetime, step_id: str | None = None
) -> None:
    """Cancel the run's unfinished tasks (of one step only, when given), each with its event."""
    if step_id is None:
        parameters = {"run": run_id, "at": at}
        await recorder.record_from(events.CANCELLED_BEFORE, parameters)
        await recorder.db.execute(_CANCEL_UNFINISHED, parameters)
    else:
        parameters = {"run": run_id, "at": at, "step": step_id}
        await recorder.record_from(events.CANCELLED_OF_STEP_BEFORE, parameters)
        await recorder.db.execute(_CANCEL_UNFINISHED_OF_STEP, parameters)


def error_value(error: RunError | None) -> dict[str, Any] | None:
    return error.as_dict() if error else None


_LINEAGE = (
    select(RUNS.c.created_by, RUNS.c.depth, USERS.c.username, USERS.c.is_admin)
    .outerjoin(USERS, USERS.c.id == RUNS.c.created_by)
    .where(RUNS.c.id == bindparam("run"))
)


async def lineage(db: Db, run_id: str) -> Lineage | None:
    """Who started the run, and its depth below its first parent."""
    row = (await db.execute(_LINEAGE, {"run": run_id})).first()
    if row is None:
        return None
    return Lineage(row.created_by, row.username or "", bool(row.is_admin), row.depth)

"""The engine's transitions of a run's tasks, each written once per path, side by side.

Portable statements (SQLAlchemy, built once: building and keying a statement per call cost
more of the main thread than SQLite's execution of it) run in a transaction that first holds
the run's lease (`queue.hold`). PostgreSQL's one-statement versions (`PG_*`) do all of a
transition in one writable CTE, as pgflow's `complete_task` does: each starts with the lease
check (`queue.PG_HOLD`: $1 run id, $2 lease owner, $3 now), changes nothing when the lease is
not held, and answers whether it was. An update reserves its columns' names, so the
parameters have names of their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Integer, bindparam, case, delete, func, insert, update

from app.domain.records import AttemptLog
from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.store.models import RUNS, TASK_LOGS, TASKS
from app.store.notifications import RUNS_QUEUED
from app.store.queries.events import PG_APPLIED, pg_events
from app.store.queries.queue import PG_HOLD
from app.store.queries.runs import (
    PG_CREATED,
    PG_CURRENT_VERSION,
    PG_UNFINISHED,
    UNFINISHED_TASK_VALUES,
)
from app.store.types import UTCDateTime

_APPLIED = PG_APPLIED

# A run starts: its row marked running, its ready steps queued. The time is typed: in a CASE,
# an untyped parameter would reach the driver as it is (SQLite then kept its own format).
_STARTED_AT = bindparam("at", type_=UTCDateTime)
START_RUN = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("run"))
    .values(
        status=RunStatus.RUNNING.value,
        # A run woken from its waits started when it first did; others start now.
        started_at=case(
            (bindparam("woken", type_=Boolean), func.coalesce(RUNS.c.started_at, _STARTED_AT)),
            else_=_STARTED_AT,
        ),
        finished_at=None,
        outputs=None,
        error=None,
        remaining_steps=bindparam("remaining"),
    )
)
QUEUE_STEPS = (
    update(TASKS)
    .where(
        TASKS.c.run_id == bindparam("run"),
        TASKS.c.step_id.in_(bindparam("steps", expanding=True)),
        TASKS.c.task_index == 0,
    )
    .values(status=TaskStatus.QUEUED.value, available_at=bindparam("at"))
)
_READY_EVENTS = pg_events(
    "SELECT 1, 'step', 'queued', step_id, task_index, attempts, NULL::jsonb, "
    "$4::timestamptz FROM ready"
)
# $4 started_at, $5 remaining_steps, $6 ready step ids. A new run only: a resumed one also
# replaces the tasks it runs again, on the portable path.
PG_START_NEW_RUN = f"""{PG_HOLD}, started AS (
    UPDATE flow_runs
    SET started_at = $4, finished_at = NULL, outputs = NULL, error = NULL, remaining_steps = $5
    WHERE id = (SELECT id FROM run)
), ready AS (
    UPDATE task_runs
    SET status = 'queued', available_at = $4
    WHERE run_id = (SELECT id FROM run) AND step_id = ANY($6::text[]) AND task_index = 0
        AND status IN {PG_UNFINISHED}
    RETURNING step_id, task_index, attempts
){_READY_EVENTS}
{_APPLIED}"""


# A resumed run's steps that run again: their fan-out elements dropped (the step expands again)
# and their own task reset to pending, as created, in its row.
_OF_STEPS = (
    TASKS.c.run_id == bindparam("run"),
    TASKS.c.step_id.in_(bindparam("steps", expanding=True)),
)
DROP_ELEMENTS = delete(TASKS).where(*_OF_STEPS, TASKS.c.task_index > 0)
RESET_STEPS = (
    update(TASKS)
    .where(*_OF_STEPS, TASKS.c.task_index == 0)
    .values(
        status=TaskStatus.PENDING.value,
        attempts=0,
        inputs=None,
        outputs=None,
        error=None,
        available_at=None,
        lease_owner=None,
        lease_expires_at=None,
        started_at=None,
        finished_at=None,
    )
)


def new_task(run_id: str, step_id: str, index: int, ready: bool) -> dict[str, Any]:
    """A task row to insert: queued when `ready`, else pending."""
    return {
        "run_id": run_id,
        "step_id": step_id,
        "task_index": index,
        "status": (TaskStatus.QUEUED if ready else TaskStatus.PENDING).value,
        "attempts": 0,
        "available_at": None,
    }


_EXPANDED_EVENTS = pg_events(
    "SELECT 1, 'step', 'queued', step_id, task_index, attempts, NULL::jsonb, "
    "$3::timestamptz FROM expanded"
)
# A fan-out's elements 1..count-1 (element 0 is the step's own row): portable, an insert of
# `new_task` rows. PostgreSQL's: $4 step_id, $5 count.
PG_EXPAND = f"""{PG_HOLD}, expanded AS (
    INSERT INTO task_runs (run_id, step_id, task_index, status, attempts)
    SELECT id, $4, index, 'queued', 0 FROM run, generate_series(1, $5 - 1) AS index
    RETURNING step_id, task_index, attempts
){_EXPANDED_EVENTS}
{_APPLIED}"""

_UPDATE_TASK = update(TASKS).where(
    TASKS.c.run_id == bindparam("run"),
    TASKS.c.step_id == bindparam("step"),
    TASKS.c.task_index == bindparam("index"),
)
# A task's start mark (written behind: see run_store.py), written with whichever update of the
# task comes first; null parameters keep the columns.
_START_MARK = {
    "attempts": func.coalesce(bindparam("attempt", type_=Integer), TASKS.c.attempts),
    "started_at": func.coalesce(TASKS.c.started_at, bindparam("started", type_=UTCDateTime)),
}


def task_values(
    run_id: str, step_id: str, index: int, mark: tuple[int, datetime] | None
) -> dict[str, Any]:
    """The parameters that name a task in an update, with its unwritten start mark."""
    attempt, started = mark or (None, None)
    return {"run": run_id, "step": step_id, "index": index, "attempt": attempt, "started": started}


# A task still running after the start-mark delay.
MARK_STARTED = _UPDATE_TASK.values(
    status=case(
        (TASKS.c.status.in_(UNFINISHED_TASK_VALUES), TaskStatus.RUNNING.value),
        else_=TASKS.c.status,
    ),
    lease_owner=bindparam("owner"),
    **_START_MARK,
)
# The statement's snapshot: the task as it was before this update.
_STARTED_EVENTS = pg_events(
    "SELECT 1, 'step', 'running', $4::varchar, $5::integer, $6::integer, NULL::jsonb, "
    "$7::timestamptz "
    "FROM task_runs WHERE run_id = (SELECT id FROM run) AND step_id = $4 AND task_index = $5 "
    f"AND status IN {PG_UNFINISHED}"
)
# $4 step_id, $5 task_index, $6 attempts, $7 started_at
PG_MARK_STARTED = f"""{PG_HOLD}, started AS (
    UPDATE task_runs
    SET status = CASE WHEN status IN {PG_UNFINISHED} THEN 'running' ELSE status END,
        attempts = $6, started_at = COALESCE(started_at, $7), lease_owner = $2
    WHERE run_id = (SELECT id FROM run) AND step_id = $4 AND task_index = $5
){_STARTED_EVENTS}
{_APPLIED}"""

# An attempt failed: the task waits for its retry (portable only: retries are rare).
RETRY_TASK = _UPDATE_TASK.values(
    status=TaskStatus.QUEUED.value,
    error=bindparam("failure"),
    available_at=bindparam("at"),
    **_START_MARK,
)

# A task finished: its row; a failed one cancels its step's other unfinished tasks
# (`runs.cancel_unfinished_tasks`); the steps it releases are queued; the run counts one step
# fewer, or ends (`runs.end`).
FINISH_TASK = _UPDATE_TASK.values(
    status=bindparam("state"),
    outputs=bindparam("result"),
    error=bindparam("failure"),
    finished_at=bindparam("at"),
    lease_owner=bindparam("owner"),
    **_START_MARK,
)
RELEASE_STEPS = QUEUE_STEPS.where(TASKS.c.status == TaskStatus.PENDING.value)
STEP_FINISHED = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("run"))
    .values(remaining_steps=RUNS.c.remaining_steps - 1)
)

# What an attempt logged, in the transaction of its outcome (its retry, or its task's finish).
ADD_LOG = insert(TASK_LOGS)


def log_values(run_id: str, key: TaskKey, log: AttemptLog, at: datetime) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step_id": key.step_id,
        "task_index": key.task_index,
        "attempt": log.attempt,
        "lines": log_lines(log),
        "truncated": log.truncated,
        "created_at": at,
    }


def log_lines(log: AttemptLog) -> list[dict[str, str]]:
    return [line.as_dict() for line in log.lines]


def _pg_logged(first: int) -> str:
    """The CTE that keeps the finished attempt's log lines, if any: ${first} attempt,
    ${first + 1} lines (NULL: nothing to keep), ${first + 2} truncated."""
    attempt, lines, truncated = first, first + 1, first + 2
    return f""", logged AS (
    INSERT INTO task_logs (run_id, step_id, task_index, attempt, lines, truncated, created_at)
    SELECT id, $4, $5, ${attempt}::integer, ${lines}::jsonb, ${truncated}::boolean, $9 FROM run
    WHERE ${lines}::jsonb IS NOT NULL
)"""


# PostgreSQL's: the task's own row. $4 step_id, $5 task_index, $6 status, $7 outputs,
# $8 error, $9 finished_at, $10 attempts (or NULL), $11 started_at (or NULL).
_PG_FINISHED = f"""{PG_HOLD}, finished AS (
    UPDATE task_runs
    SET status = $6, outputs = $7::jsonb, error = $8::jsonb, finished_at = $9,
        attempts = COALESCE($10, attempts), started_at = COALESCE(started_at, $11),
        lease_owner = $2
    WHERE run_id = (SELECT id FROM run) AND step_id = $4 AND task_index = $5
    RETURNING status, attempts, error
)"""
# The events every finish starts with: the start mark it takes along ($10 attempt, $11
# started at; none when the mark was written on its own), then the task's end.
_PG_FINISH_EVENTS = (
    "SELECT 0, 'step', 'running', $4::varchar, $5::integer, $10::integer, NULL::jsonb, "
    "$11::timestamptz FROM run WHERE $10 IS NOT NULL",
    "SELECT 1, 'step', status, $4, $5, attempts, error, $9::timestamptz FROM finished",
)
_FINISHED_EVENTS = pg_events(
    *_PG_FINISH_EVENTS,
    "SELECT 2, 'step', 'cancelled', step_id, task_index, attempts, NULL, $9 FROM siblings",
    "SELECT 3, 'step', 'queued', step_id, task_index, attempts, NULL, $9 FROM released",
)
# $12 released step ids, $13 steps finished (0|1); $14-$16 its log (`_pg_logged`)
PG_FINISH_TASK = f"""{_PG_FINISHED}{_pg_logged(14)}, siblings AS (
    UPDATE task_runs
    SET status = 'cancelled', finished_at = $9
    WHERE run_id = (SELECT id FROM run) AND step_id = $4 AND task_index <> $5
        AND $6 = 'failed' AND status IN {PG_UNFINISHED}
    RETURNING step_id, task_index, attempts
), released AS (
    UPDATE task_runs
    SET status = 'queued', available_at = $9
    WHERE cardinality($12::text[]) > 0 AND run_id = (SELECT id FROM run)
        AND step_id = ANY($12::text[]) AND task_index = 0 AND status = 'pending'
    RETURNING step_id, task_index, attempts
), counted AS (
    UPDATE flow_runs SET remaining_steps = remaining_steps - $13
    WHERE id = (SELECT id FROM run) AND $13 <> 0
){_FINISHED_EVENTS}
{_APPLIED}"""
_ENDED_EVENTS = pg_events(
    *_PG_FINISH_EVENTS,
    "SELECT 2, 'step', 'cancelled', step_id, task_index, attempts, NULL, $9 FROM unfinished",
    "SELECT 3, 'run', status, NULL, NULL, NULL, error, $9 FROM ended",
)
# As PG_FINISH_TASK for the task that ends its run, with `runs.end` in the same statement:
# $12 run status, $13 run outputs, $14 run error; every other unfinished task of the run is
# cancelled, the lease is let go; $15-$17 its log (`_pg_logged`).
PG_FINISH_TASK_AND_RUN = f"""{_PG_FINISHED}{_pg_logged(15)}, unfinished AS (
    UPDATE task_runs
    SET status = 'cancelled', finished_at = $9
    WHERE run_id = (SELECT id FROM run) AND NOT (step_id = $4 AND task_index = $5)
        AND status IN {PG_UNFINISHED}
    RETURNING step_id, task_index, attempts
), ended AS (
    UPDATE flow_runs
    SET status = $12, outputs = $13::jsonb, error = $14::jsonb, finished_at = $9,
        remaining_steps = 0, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = (SELECT id FROM run)
    RETURNING status, error
), parent_woken AS (
    UPDATE flow_runs
    SET lease_expires_at = CASE
        WHEN status = 'running' AND lease_owner IS NULL AND lease_expires_at > $9 THEN $9
        ELSE lease_expires_at END
    WHERE id = (SELECT parent_run_id FROM run)
    RETURNING pg_notify('{RUNS_QUEUED}', '')
){_ENDED_EVENTS}
{_APPLIED}"""

# A run's progress merged (`store/run_progress.py`): a new run's start, finishes of its steps'
# own tasks, and the run's end, as the statements above would write them one after the other,
# each row updated once. Unwatched runs only: a watched one changes nothing, answers true,
# and its parts are written one by one with their events.
# $4 started at (NULL: not a start), $5 steps to run, $6 steps finished;
# $7-$14 the finishes (step id, status, outputs, error, finished at, attempts, started at,
# queued at: when a start or an earlier finish of the same progress queued the step);
# $15-$17 the steps queued and not finished (step id, queued at, by the start);
# $18-$21 the run's end (status, outputs, error, at), or NULLs;
# $22-$26 the logs kept (step id, attempt, lines, truncated, at).
_ENDS = "$18::varchar IS NOT NULL"
_STARTS = "$4::timestamptz IS NOT NULL"
PG_PROGRESS = f"""{PG_HOLD}, live AS (
    SELECT id, parent_run_id FROM run WHERE NOT watched
), progressed AS (
    UPDATE flow_runs
    SET started_at = COALESCE($4::timestamptz, started_at),
        remaining_steps = CASE WHEN {_ENDS} THEN 0 WHEN {_STARTS} THEN $5::integer - $6::integer
            ELSE remaining_steps - $6::integer END,
        status = COALESCE($18::varchar, status),
        outputs = CASE WHEN {_ENDS} THEN $19::jsonb WHEN {_STARTS} THEN NULL ELSE outputs END,
        error = CASE WHEN {_ENDS} THEN $20::jsonb WHEN {_STARTS} THEN NULL ELSE error END,
        finished_at = CASE WHEN {_ENDS} THEN $21::timestamptz WHEN {_STARTS} THEN NULL
            ELSE finished_at END,
        lease_owner = CASE WHEN {_ENDS} THEN NULL ELSE lease_owner END,
        lease_expires_at = CASE WHEN {_ENDS} THEN NULL ELSE lease_expires_at END
    WHERE id = (SELECT id FROM live)
), finished AS (
    UPDATE task_runs AS t
    SET status = f.status, outputs = f.outputs::jsonb, error = f.error::jsonb,
        finished_at = f.at, attempts = COALESCE(f.attempt, t.attempts),
        started_at = COALESCE(t.started_at, f.started), lease_owner = $2,
        available_at = COALESCE(f.queued_at, t.available_at)
    FROM unnest($7::varchar[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
        $12::integer[], $13::timestamptz[], $14::timestamptz[])
        AS f (step_id, status, outputs, error, at, attempt, started, queued_at)
    WHERE t.run_id = (SELECT id FROM live) AND t.step_id = ANY($7::varchar[])
        AND t.task_index = 0 AND t.step_id = f.step_id
), queued AS (
    UPDATE task_runs AS t
    SET status = CASE WHEN {_ENDS} THEN 'cancelled' ELSE 'queued' END,
        available_at = CASE WHEN t.status = 'pending' OR q.by_start THEN q.at
            ELSE t.available_at END,
        finished_at = CASE WHEN {_ENDS} THEN $21 ELSE t.finished_at END
    FROM unnest($15::varchar[], $16::timestamptz[], $17::boolean[]) AS q (step_id, at, by_start)
    WHERE t.run_id = (SELECT id FROM live) AND t.step_id = ANY($15::varchar[])
        AND t.task_index = 0 AND t.step_id = q.step_id
        AND (t.status = 'pending'
            OR (({_ENDS} OR q.by_start) AND t.status IN {PG_UNFINISHED}))
), unfinished AS (
    UPDATE task_runs AS t
    SET status = 'cancelled', finished_at = $21
    WHERE {_ENDS} AND t.run_id = (SELECT id FROM live) AND t.status IN {PG_UNFINISHED}
        AND NOT (t.task_index = 0
            AND (t.step_id = ANY($7::varchar[]) OR t.step_id = ANY($15::varchar[])))
), logged AS (
    INSERT INTO task_logs (run_id, step_id, task_index, attempt, lines, truncated, created_at)
    SELECT live.id, l.step_id, 0, l.attempt, l.lines::jsonb, l.truncated, l.at
    FROM live, unnest($22::text[], $23::integer[], $24::text[], $25::boolean[],
        $26::timestamptz[]) AS l (step_id, attempt, lines, truncated, at)
), parent_woken AS (
    UPDATE flow_runs
    SET lease_expires_at = CASE
        WHEN status = 'running' AND lease_owner IS NULL AND lease_expires_at > $21 THEN $21
        ELSE lease_expires_at END
    WHERE {_ENDS} AND id = (SELECT parent_run_id FROM live)
    RETURNING pg_notify('{RUNS_QUEUED}', '')
)
{_APPLIED}"""

# A run created with its progress (`PostgresPath`: a run `/execute` creates and executes at
# once, `create_later`): `PG_CREATE`'s parameters ($1-$16), then `PG_PROGRESS`'s from $4 on
# ($17-$39). Its rows are inserted as `PG_CREATE` then `PG_PROGRESS` would leave them (a test
# compares), unless the creation is refused: then nothing is written. Its answer is
# `PG_CREATE`'s. A run nobody knew of until now has no watchers: no events.
_NEW_ENDS = "$31::varchar IS NOT NULL"
PG_CREATE_WITH_PROGRESS = f"""
WITH {PG_CURRENT_VERSION}, run AS (
    INSERT INTO flow_runs (id, flow_name, definition_id, status, inputs, remaining_steps,
        idempotency_key, created_at, lease_owner, lease_expires_at, created_by, traceparent,
        priority, concurrency_key, concurrency_limit, started_at, outputs, error, finished_at)
    SELECT $1, $2, version.id, COALESCE($31::varchar, $4), $5::jsonb,
        CASE WHEN {_NEW_ENDS} THEN 0 ELSE $18::integer - $19::integer END, $7, $8,
        CASE WHEN {_NEW_ENDS} THEN NULL ELSE $9 END,
        CASE WHEN {_NEW_ENDS} THEN NULL ELSE $10::timestamptz END, $12, $13, $14, $15, $16,
        $17::timestamptz, $32::jsonb, $33::jsonb, $34::timestamptz
    FROM version
    ON CONFLICT (idempotency_key, flow_name, created_by) DO NOTHING
    RETURNING id
), tasks AS (
    INSERT INTO task_runs (run_id, step_id, task_index, status, attempts, outputs, error,
        started_at, finished_at, lease_owner, available_at)
    SELECT run.id, step.id, 0,
        CASE WHEN f.step_id IS NOT NULL THEN f.status
            WHEN {_NEW_ENDS} THEN 'cancelled'
            WHEN q.step_id IS NOT NULL THEN 'queued' ELSE 'pending' END,
        COALESCE(f.attempt, 0), f.outputs::jsonb, f.error::jsonb, f.started,
        CASE WHEN f.step_id IS NOT NULL THEN f.at WHEN {_NEW_ENDS} THEN $34 END,
        CASE WHEN f.step_id IS NOT NULL THEN $9 END, COALESCE(f.queued_at, q.at)
    FROM run, unnest($6::text[]) WITH ORDINALITY AS step(id, position)
    LEFT JOIN unnest($20::varchar[], $21::text[], $22::text[], $23::text[], $24::timestamptz[],
        $25::integer[], $26::timestamptz[], $27::timestamptz[])
        AS f (step_id, status, outputs, error, at, attempt, started, queued_at)
        ON f.step_id = step.id
    LEFT JOIN unnest($28::varchar[], $29::timestamptz[], $30::boolean[])
        AS q (step_id, at, by_start) ON q.step_id = step.id
    ORDER BY step.position
), logged AS (
    INSERT INTO task_logs (run_id, step_id, task_index, attempt, lines, truncated, created_at)
    SELECT run.id, l.step_id, 0, l.attempt, l.lines::jsonb, l.truncated, l.at
    FROM run, unnest($35::text[], $36::integer[], $37::text[], $38::boolean[],
        $39::timestamptz[]) AS l (step_id, attempt, lines, truncated, at)
), {PG_CREATED}
"""

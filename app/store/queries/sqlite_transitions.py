"""SQLite's transitions of the hot path, as synchronous functions run on the connection's own
thread (`store/sqlite.py` runs a whole group commit there in one call).

Each function is the portable transition of `run_store.py` statement for statement — the
same lease check, the same rows, the same events in the same order, the same encoded values
(`SqliteEncoder` uses the columns' own SQLAlchemy types) — written as SQL text built once at
import, which sqlite3's statement cache prepares once per connection. Where the portable
statements run one `await` (a hop to the connection's thread and back) and SQLAlchemy's
execution machinery per statement, these run back to back in C: a transition costs tens of
microseconds. A list parameter (`steps`) is JSON text read with `json_each`, so that each
statement keeps one text.

A lease-checked transition answers whether its run is watched (its watchers are told after
the commit), or None when this worker does not hold the run's lease: then it wrote nothing.
SQLite has one writer, and the batch's transaction (`BEGIN IMMEDIATE`) holds it: the run's
row cannot change between the check and the writes, as the row lock ensures elsewhere.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app.domain.records import Creation
from app.domain.runs import ACTIVE_RUN_STATUSES, RunStatus, TaskStatus
from app.store.queries.runs import UNFINISHED_TASK_VALUES

Parameters = Mapping[str, Any]

# Values of enums (no user data) as SQL text.
_UNFINISHED = "(" + ", ".join(f"'{status}'" for status in UNFINISHED_TASK_VALUES) + ")"
_ACTIVE = "(" + ", ".join(sorted(f"'{status.value}'" for status in ACTIVE_RUN_STATUSES)) + ")"
_RUNNING = f"'{RunStatus.RUNNING.value}'"
_QUEUED = f"'{TaskStatus.QUEUED.value}'"
_PENDING = f"'{TaskStatus.PENDING.value}'"
_CANCELLED = f"'{TaskStatus.CANCELLED.value}'"
_TASK_RUNNING = f"'{TaskStatus.RUNNING.value}'"


@functools.cache
def insert_text(table: str, columns: tuple[str, ...]) -> str:
    """`INSERT INTO table (columns) VALUES (:columns)`: one text per table and set of columns
    (a row's keys, as `SqliteEncoder.row` completes them)."""
    names = ", ".join(columns)
    values = ", ".join(f":{column}" for column in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({values})"


def _insert_all(cursor: sqlite3.Cursor, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        cursor.executemany(insert_text(table, tuple(rows[0])), rows)


# The lease check (`queue.hold`): the run is running under `owner`'s unexpired lease.
HOLD = f"""SELECT watched, parent_run_id FROM flow_runs
WHERE id = :run AND lease_owner = :owner AND status = {_RUNNING} AND lease_expires_at > :now"""


def _hold(cursor: sqlite3.Cursor, parameters: Parameters) -> tuple[bool, str | None] | None:
    """(watched, parent run id) of the run whose lease `owner` holds; None when it does not."""
    row = cursor.execute(HOLD, parameters).fetchone()
    return None if row is None else (bool(row[0]), row[1])


# Events read from the rows a transition is about to change (`events.*_BEFORE`) or has changed
# (`events.TASK_CHANGED`), ordered as the task rows were created.
_EVENTS_FROM_TASKS = """INSERT INTO run_events
    (run_id, type, status, step_id, task_index, attempt, error, at)
SELECT run_id, 'step', {status}, step_id, task_index, {attempt}, {error}, {at}
FROM task_runs WHERE run_id = :run AND {condition} ORDER BY id"""
_IN_STEPS = "step_id IN (SELECT value FROM json_each(:steps))"
_THE_TASK = "step_id = :step AND task_index = :index"


def _events_from_tasks(
    status: str, condition: str, *, attempt: str = "attempts", error: str = "NULL"
) -> str:
    return _EVENTS_FROM_TASKS.format(
        status=status, attempt=attempt, error=error, at=":at", condition=condition
    )


QUEUED_BEFORE = _events_from_tasks(
    _QUEUED, f"{_IN_STEPS} AND task_index = 0 AND status = {_PENDING}"
)
TASK_CHANGED = _events_from_tasks("status", _THE_TASK, error="error")
CANCELLED_BEFORE = _events_from_tasks(_CANCELLED, f"status IN {_UNFINISHED}")
CANCELLED_OF_STEP_BEFORE = _events_from_tasks(
    _CANCELLED, f"status IN {_UNFINISHED} AND step_id = :step"
)
RUNNING_BEFORE = _EVENTS_FROM_TASKS.format(
    status=_TASK_RUNNING,
    attempt=":attempt",
    error="NULL",
    at=":started",
    condition=f"{_THE_TASK} AND status IN {_UNFINISHED}",
)


# Creating a run (`runs.create`, after `versions.is_current`).

VERSION = "SELECT name, version FROM flow_definitions WHERE id = :id"
NEWER = "SELECT 1 FROM flow_definitions WHERE name = :name AND version > :version LIMIT 1"
ADD_KEY = "INSERT INTO concurrency_keys (name) VALUES (:name) ON CONFLICT DO NOTHING"


def create(
    cursor: sqlite3.Cursor,
    run: Parameters,
    tasks: Sequence[Parameters],
    latest_only: bool,
    logs: Sequence[Parameters] = (),
) -> Creation:
    """The run row and its pending tasks (or, for a run created with its progress, its rows
    as they stand after it, and its tasks' logs), unless its version is stale or its
    idempotency key taken."""
    found = cursor.execute(VERSION, {"id": run["definition_id"]}).fetchone()
    if found is None:
        return Creation.STALE
    if latest_only:
        newer = cursor.execute(NEWER, {"name": found[0], "version": found[1]}).fetchone()
        if newer is not None:
            return Creation.STALE
    try:
        cursor.execute(insert_text("flow_runs", tuple(run)), run)
    except sqlite3.IntegrityError:  # the failed statement wrote nothing; the rest stands
        if run["idempotency_key"] is None:
            raise
        return Creation.KEY_TAKEN
    if run["concurrency_key"] is not None:
        cursor.execute(ADD_KEY, {"name": run["concurrency_key"]})
    _insert_all(cursor, "task_runs", tasks)
    _insert_all(cursor, "task_logs", logs)
    return Creation.CREATED


# A new run starts (`tasks.START_RUN`, `tasks.QUEUE_STEPS`).

START_RUN = f"""UPDATE flow_runs
SET status = {_RUNNING}, outputs = :none, error = :none, remaining_steps = :remaining,
    started_at = CASE WHEN :woken THEN coalesce(started_at, :at) ELSE :at END,
    finished_at = NULL
WHERE id = :run"""
QUEUE_STEPS = f"""UPDATE task_runs SET status = {_QUEUED}, available_at = :at
WHERE run_id = :run AND {_IN_STEPS} AND task_index = 0"""


def start_run(cursor: sqlite3.Cursor, held: Parameters, started: Parameters) -> bool | None:
    checked = _hold(cursor, held)
    if checked is None:
        return None
    watched, _ = checked
    cursor.execute(START_RUN, started)
    if started["ready"]:
        if watched:
            cursor.execute(QUEUED_BEFORE, started)
        cursor.execute(QUEUE_STEPS, started)
    return watched


# A fan-out's elements 1..count-1 (`tasks.new_task` rows), queued, with their events: built by
# the statement, in index order, however many (a fan-out may have thousands).
_ELEMENTS = """WITH RECURSIVE element (task_index) AS (
    SELECT 1 WHERE :count > 1 UNION ALL SELECT task_index + 1 FROM element
    WHERE task_index < :count - 1
)"""
EXPAND = f"""{_ELEMENTS}
INSERT INTO task_runs (run_id, step_id, task_index, status, attempts, available_at)
SELECT :run, :step, task_index, {_QUEUED}, 0, NULL FROM element ORDER BY task_index"""
EXPANDED_EVENTS = f"""{_ELEMENTS}
INSERT INTO run_events (run_id, type, status, step_id, task_index, attempt, error, at)
SELECT :run, 'step', {_QUEUED}, :step, task_index, NULL, :none, :at FROM element
ORDER BY task_index"""


def expand(cursor: sqlite3.Cursor, held: Parameters, expanded: Parameters) -> bool | None:
    checked = _hold(cursor, held)
    if checked is None:
        return None
    watched, _ = checked
    cursor.execute(EXPAND, expanded)
    if watched:
        cursor.execute(EXPANDED_EVENTS, expanded)
    return watched


# A task's start mark (`tasks.MARK_STARTED`).

MARK_STARTED = f"""UPDATE task_runs
SET status = CASE WHEN status IN {_UNFINISHED} THEN {_TASK_RUNNING} ELSE status END,
    attempts = coalesce(:attempt, attempts), lease_owner = :owner,
    started_at = coalesce(started_at, :started)
WHERE run_id = :run AND {_THE_TASK}"""


def mark_started(cursor: sqlite3.Cursor, held: Parameters, started: Parameters) -> bool | None:
    checked = _hold(cursor, held)
    if checked is None:
        return None
    watched, _ = checked
    if watched:
        cursor.execute(RUNNING_BEFORE, started)
    cursor.execute(MARK_STARTED, started)
    return watched


# A task's finish (`run_store.task_finished`): the task's row, its log, its failed fan-out's
# other elements cancelled, the steps it releases queued, the run's count or its end.

FINISH_TASK = f"""UPDATE task_runs
SET status = :state, attempts = coalesce(:attempt, attempts), outputs = :result,
    error = :failure, lease_owner = :owner, started_at = coalesce(started_at, :started),
    finished_at = :at
WHERE run_id = :run AND {_THE_TASK}"""
CANCEL_UNFINISHED_OF_STEP = f"""UPDATE task_runs SET status = {_CANCELLED}, finished_at = :at
WHERE run_id = :run AND status IN {_UNFINISHED} AND step_id = :step"""
RELEASE_STEPS = f"{QUEUE_STEPS} AND status = {_PENDING}"
STEP_FINISHED = "UPDATE flow_runs SET remaining_steps = remaining_steps - 1 WHERE id = :run"
# `runs.end`, `runs.cancel_unfinished_tasks`, `runs.wake_parent`.
END_RUN = f"""UPDATE flow_runs
SET status = :state, outputs = :result, error = :failure, finished_at = :at, remaining_steps = 0,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :run AND status IN {_ACTIVE}"""
CANCEL_UNFINISHED = f"""UPDATE task_runs SET status = {_CANCELLED}, finished_at = :at
WHERE run_id = :run AND status IN {_UNFINISHED}"""
WAKE_PARENT = f"""UPDATE flow_runs
SET lease_expires_at = CASE
    WHEN status = {_RUNNING} AND lease_owner IS NULL AND lease_expires_at > :at THEN :at
    ELSE lease_expires_at END
WHERE id = :parent"""


def finish(
    cursor: sqlite3.Cursor,
    held: Parameters,
    finished: Parameters,
    events: Callable[[], Sequence[Parameters]] | None,
    log: Parameters | None,
    ended: Parameters | None,
) -> bool | None:
    """`finished`: the task's update, with `failed`, `released` and `step_finished`; `events`:
    those of its start mark and finish when its start mark is taken along (else None: the
    finish's event is read from the row); `ended`: the run's end, with its event. The events
    are made (`events()`, `ended["event"]()`) only for a watched run."""
    checked = _hold(cursor, held)
    if checked is None:
        return None
    watched, parent = checked
    if events is None:  # started long ago: the finish's event as the row now says
        cursor.execute(FINISH_TASK, finished)
        if watched:
            cursor.execute(TASK_CHANGED, finished)
    else:  # the usual short step: its start and its end, known here
        if watched:
            _insert_all(cursor, "run_events", events())
        cursor.execute(FINISH_TASK, finished)
    if log is not None:
        cursor.execute(insert_text("task_logs", tuple(log)), log)
    if finished["failed"]:  # a failed element ends its fan-out
        if watched:
            cursor.execute(CANCELLED_OF_STEP_BEFORE, finished)
        cursor.execute(CANCEL_UNFINISHED_OF_STEP, finished)
    if finished["released"]:
        if watched:
            cursor.execute(QUEUED_BEFORE, finished)
        cursor.execute(RELEASE_STEPS, finished)
    if ended is not None:
        if cursor.execute(END_RUN, ended).rowcount:
            if watched:
                cursor.execute(CANCELLED_BEFORE, ended)
            cursor.execute(CANCEL_UNFINISHED, ended)
            if watched:
                event = ended["event"]()
                cursor.execute(insert_text("run_events", tuple(event)), event)
            if parent is not None:
                cursor.execute(WAKE_PARENT, {"parent": parent, "at": ended["at"]})
    elif finished["step_finished"]:
        cursor.execute(STEP_FINISHED, finished)
    return watched

"""Run events: written with the transitions they record, read back in order.

A run is watched once a client asked for its events (`watch`). From then on every transition
of the run or of one of its tasks adds a `run_events` row in the transaction that writes it
(the statements of `tasks.py`, `runs.py` and `queue.py` call these), so an event exists if and
only if its transition committed. A run nobody watches writes none: the transitions of the
hot path pay one column read, and a stream starts from a snapshot of the rows anyway. The
transaction's `Recorder` knows whether its run is watched: the run's row is locked first
(the lease check, `queue.hold`, or `locked`), and `watch` takes the same lock, so a
transition either committed before the watch's snapshot or writes its events. The portable
statements write events in one of three ways, each chosen so that the event says exactly
what changed:

- known values (`record`), when the caller knows the transition (a run claimed, a start
  mark taken along with a finish, the run's end);
- the task's row after its update (`TASK_CHANGED`): a finish or a retry, with its attempt and
  error as stored;
- the rows an update is about to change (`*_BEFORE`), selected with the update's own
  condition just before it runs, in the same transaction under the run's lock (queued steps,
  cancelled tasks, a start mark).

PostgreSQL's one-statement transitions insert their events in the same statement
(`pg_events`), only when the `run` CTE's row is watched. A run's outputs and its tasks' are
not copied into events: `after` joins the task's (or the run's) row, whose outputs never
change once completed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    select,
    type_coerce,
    update,
)

from app.domain.records import (
    FINISHED_RUN_STATUS_VALUES,
    RUN_EVENT,
    STEP_EVENT,
    OmittedValue,
    RunEvent,
)
from app.domain.runs import UNFINISHED_TASK_STATUSES, RunError, RunStatus, TaskKey, TaskStatus
from app.engine.store import TaskFinish
from app.store.models import EVENTS, RUNS, TASKS
from app.store.notifications import RUN_EVENTS
from app.store.session import Db
from app.store.types import JsonDocument, UTCDateTime

_COLUMNS = ["run_id", "type", "status", "step_id", "task_index", "attempt", "error", "at"]
_INSERT = insert(EVENTS)


def run_event(
    run_id: str, status: RunStatus, at: datetime, error: dict[str, Any] | None = None
) -> dict[str, Any]:
    return dict(
        zip(_COLUMNS, (run_id, RUN_EVENT, status.value, None, None, None, error, at), strict=True)
    )


def step_event(
    run_id: str,
    step_id: str,
    task_index: int,
    status: TaskStatus,
    at: datetime,
    attempt: int | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    values = (run_id, STEP_EVENT, status.value, step_id, task_index, attempt, error, at)
    return dict(zip(_COLUMNS, values, strict=True))


def start_mark(
    run_id: str, key: TaskKey, mark: tuple[int, datetime] | None
) -> list[dict[str, Any]]:
    """The running event of a start mark written behind, taken along by the task's next
    update (none when the mark was written on its own)."""
    if mark is None:
        return []
    attempt, started = mark
    return [step_event(run_id, key.step_id, key.task_index, TaskStatus.RUNNING, started, attempt)]


def started_and_finished(
    run_id: str, finish: TaskFinish, mark: tuple[int, datetime]
) -> list[dict[str, Any]]:
    """The events of a short task's finish that takes its start mark along."""
    key = finish.key
    error = finish.error.as_dict() if finish.error else None
    ended = step_event(
        run_id, key.step_id, key.task_index, finish.status, finish.at, mark[0], error
    )
    return [*start_mark(run_id, key, mark), ended]


@dataclass(frozen=True)
class Recorder:
    """A transaction's writer of its run's events: they are written when the run is watched,
    and not at all otherwise."""

    db: Db
    watched: bool
    # The run's parent, for a child run (read with the run's lock, as `watched` is): its end
    # wakes the parent (`runs.end`).
    parent_run_id: str | None = None

    async def record(self, events: Sequence[dict[str, Any]]) -> None:
        """Events whose values the caller knows, in order."""
        if self.watched and events:
            await self.db.execute(_INSERT, list(events))

    async def record_from(self, statement: Any, parameters: dict[str, Any]) -> None:
        """Events read from the rows a transition changes: one of the inserts below."""
        if self.watched:
            await self.db.execute(statement, parameters)


_LOCKED = (
    select(RUNS.c.watched, RUNS.c.parent_run_id)
    .where(RUNS.c.id == bindparam("run"))
    .with_for_update()
)


async def locked(db: Db, run_id: str) -> Recorder:
    """Lock the run's row for the caller's transaction (a write of a run without a lease:
    cancel, retry); its writer of events. Not watched when the run does not exist."""
    row = (await db.execute(_LOCKED, {"run": run_id})).first()
    if row is None:
        return Recorder(db, False)
    return Recorder(db, bool(row.watched), row.parent_run_id)


_WATCH = update(RUNS).where(RUNS.c.id == bindparam("run")).values(watched=True)


async def watch(db: Db, run_id: str) -> None:
    """Mark the run watched, for the caller's transaction to read its snapshot: holding the
    run's row, no transition of it commits in between. A finished run changes no more."""
    row = (await db.execute(_LOCKED.add_columns(RUNS.c.status), {"run": run_id})).first()
    if row is not None and not row.watched and row.status not in FINISHED_RUN_STATUS_VALUES:
        await db.execute(_WATCH, {"run": run_id})


def _from_tasks(status: Any, at: Any, *conditions: Any, as_stored: bool = False) -> Any:
    """An insert of one step event per task matching `conditions`; `as_stored`: with the
    task's own error (the event of its row as updated)."""
    rows = select(
        TASKS.c.run_id,
        literal(STEP_EVENT, String),
        status,
        TASKS.c.step_id,
        TASKS.c.task_index,
        TASKS.c.attempts,
        TASKS.c.error if as_stored else type_coerce(null(), JsonDocument),
        at,
    ).where(TASKS.c.run_id == bindparam("run"), *conditions)
    return _INSERT.from_select(_COLUMNS, rows.order_by(TASKS.c.id))


def _literal(status: TaskStatus) -> Any:
    return literal(status.value, String)


_AT = bindparam("at", type_=UTCDateTime)
_THE_TASK = (TASKS.c.step_id == bindparam("step"), TASKS.c.task_index == bindparam("index"))

# A task's row as it now is (after its finish or retry): status, attempt, error as stored.
TASK_CHANGED = _from_tasks(TASKS.c.status, _AT, *_THE_TASK, as_stored=True)
# `tasks.QUEUE_STEPS`/`RELEASE_STEPS`: the pending first tasks of `steps` are about to be queued.
QUEUED_BEFORE = _from_tasks(
    _literal(TaskStatus.QUEUED),
    _AT,
    TASKS.c.step_id.in_(bindparam("steps", expanding=True)),
    TASKS.c.task_index == 0,
    TASKS.c.status == TaskStatus.PENDING.value,
)
# `runs.cancel_unfinished_tasks`: the run's unfinished tasks (of one step) are about to be
# cancelled.
_UNFINISHED = TASKS.c.status.in_(sorted(status.value for status in UNFINISHED_TASK_STATUSES))
CANCELLED_BEFORE = _from_tasks(_literal(TaskStatus.CANCELLED), _AT, _UNFINISHED)
CANCELLED_OF_STEP_BEFORE = _from_tasks(
    _literal(TaskStatus.CANCELLED), _AT, _UNFINISHED, TASKS.c.step_id == bindparam("step")
)
# `tasks.MARK_STARTED`: the task is about to be marked running (unless it finished already).
RUNNING_BEFORE = _INSERT.from_select(
    _COLUMNS,
    select(
        TASKS.c.run_id,
        literal(STEP_EVENT, String),
        _literal(TaskStatus.RUNNING),
        TASKS.c.step_id,
        TASKS.c.task_index,
        bindparam("attempt", type_=Integer),
        type_coerce(null(), JsonDocument),
        bindparam("started", type_=UTCDateTime),
    ).where(TASKS.c.run_id == bindparam("run"), *_THE_TASK, _UNFINISHED),
)


# PostgreSQL: the events of a one-statement transition, as its last data-modifying CTE.


def pg_events(*sources: str) -> str:
    """`, events AS (INSERT ...)`: one row per row of the `sources`, each a SELECT of (n,
    type, status, step_id, task_index, attempt, error, at) where n orders the events of the
    statement (ids are drawn in the order the rows are inserted). Nothing when the run is not
    watched: the condition is a one-time filter, the sources are then not even read."""
    rows = "\n        UNION ALL ".join(sources)
    return f""", events AS (
    INSERT INTO run_events (run_id, type, status, step_id, task_index, attempt, error, at)
    SELECT (SELECT id FROM run), e.type, e.status, e.step_id, e.task_index, e.attempt, e.error,
        e.at
    FROM (
        {rows}
    ) AS e (n, type, status, step_id, task_index, attempt, error, at)
    WHERE (SELECT watched FROM run)
    ORDER BY e.n, e.task_index, e.step_id
)"""


# The answer of a lease-checked transition: whether its run is watched (its watchers are to be
# notified), NULL when the lease was not held and nothing was written.
PG_APPLIED = "SELECT (SELECT watched FROM run)\n"

PG_NOTIFY = f"SELECT pg_notify('{RUN_EVENTS}', $1::text)"
MAX_NOTIFY_PAYLOAD = 7900  # bytes: PostgreSQL refuses payloads of 8000 and more


def pg_notify_payloads(run_ids: Sequence[str]) -> list[str]:
    """The run ids as comma-separated payloads, each within PostgreSQL's limit."""
    payloads: list[str] = []
    current: list[str] = []
    size = 0
    for run_id in dict.fromkeys(run_ids):
        if current and size + len(run_id) + 1 > MAX_NOTIFY_PAYLOAD:
            payloads.append(",".join(current))
            current, size = [], 0
        current.append(run_id)
        size += len(run_id) + 1
    if current:
        payloads.append(",".join(current))
    return payloads


# Reading.


async def last_id(db: Db, run_id: str) -> int:
    """The id of the run's latest event (0 when it has none)."""
    statement = select(func.coalesce(func.max(EVENTS.c.id), 0)).where(EVENTS.c.run_id == run_id)
    return int((await db.execute(statement)).scalar_one())


def _outputs_size_and_value(limit: int) -> tuple[Any, Any]:
    """A completed step's (or run's) outputs, and the length of their JSON text: the value
    is not read past `limit`."""
    completed = EVENTS.c.status == TaskStatus.COMPLETED.value
    source = case(
        (and_(completed, EVENTS.c.type == STEP_EVENT), TASKS.c.outputs),
        (and_(completed, EVENTS.c.type == RUN_EVENT), RUNS.c.outputs),
        else_=type_coerce(null(), JsonDocument),
    )
    size = func.length(cast(source, Text))
    value = type_coerce(case((size > limit, null()), else_=source), JsonDocument)
    return size, value


async def after(db: Db, run_id: str, after_id: int, limit: int, value_limit: int) -> list[RunEvent]:
    """The run's events after `after_id`, oldest first, at most `limit`; outputs whose JSON
    text is longer than `value_limit` are left in the store (`OmittedValue`)."""
    size, outputs = _outputs_size_and_value(value_limit)
    statement = (
        select(EVENTS, outputs.label("outputs"), size.label("outputs_size"))
        .select_from(
            EVENTS.outerjoin(
                TASKS,
                and_(
                    EVENTS.c.type == STEP_EVENT,
                    TASKS.c.run_id == EVENTS.c.run_id,
                    TASKS.c.step_id == EVENTS.c.step_id,
                    TASKS.c.task_index == EVENTS.c.task_index,
                ),
            ).outerjoin(RUNS, and_(EVENTS.c.type == RUN_EVENT, RUNS.c.id == EVENTS.c.run_id))
        )
        .where(EVENTS.c.run_id == run_id, EVENTS.c.id > after_id)
        .order_by(EVENTS.c.id)
        .limit(limit)
    )
    return [
        RunEvent(
            id=row.id,
            run_id=row.run_id,
            type=row.type,
            status=row.status,
            at=row.at,
            step_id=row.step_id,
            task_index=row.task_index,
            attempt=row.attempt,
            outputs=_read(row.outputs, row.outputs_size, value_limit),
            error=RunError.of(row.error),
        )
        for row in await db.execute(statement)
    ]


def _read(value: Any, size: int | None, limit: int) -> Any:
    return OmittedValue(size) if size is not None and size > limit else value

"""Parked runs and signals: the statements of durable waits (docs/architecture.md, "Parked
runs").

A parked run stays `running`, with no lease owner and `lease_expires_at` at the time it wakes:
the claim's takeover query (`queue.claim`) takes it again then, like a run whose worker died,
and the engine resumes it from its tasks. A run that waits only for a signal parks until
`SIGNAL_ONLY`, a date no clock reaches; the signal wakes it (`wake`). Every statement here runs
under the run's row lock (`queue.hold` for the engine's, `events.locked` for a sender's), so a
signal is either seen by the transaction that parks the run or wakes the parked run: it is
never missed between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update

from app.domain.records import SIGNAL_ONLY
from app.domain.runs import ACTIVE_RUN_STATUSES, RunStatus, TaskKey, TaskStatus
from app.engine.store import Signal
from app.store.models import RUNS, SIGNALS, TASKS
from app.store.queries import events, runs
from app.store.session import Db

_WAITING = (
    update(TASKS)
    .where(
        TASKS.c.run_id == bindparam("run"),
        TASKS.c.step_id == bindparam("step"),
        TASKS.c.task_index == bindparam("index"),
    )
    .values(status=TaskStatus.WAITING.value, available_at=bindparam("until"))
)


async def task_waiting(
    held: events.Recorder, run_id: str, key: TaskKey, until: datetime | None, at: datetime
) -> None:
    """The task waits until `until` at the latest (kept in `available_at`)."""
    where = {"run": run_id, "step": key.step_id, "index": key.task_index}
    await held.db.execute(_WAITING, {**where, "until": until})
    waiting = TaskStatus.WAITING
    await held.record([events.step_event(run_id, key.step_id, key.task_index, waiting, at)])


def _untaken(run_id: Any, names: Any) -> Any:
    return and_(
        SIGNALS.c.run_id == run_id, SIGNALS.c.name.in_(names), SIGNALS.c.taken_step.is_(None)
    )


_FIRST_FOR = (
    select(SIGNALS.c.id, SIGNALS.c.name, SIGNALS.c.payload, SIGNALS.c.taken_step)
    .where(
        SIGNALS.c.run_id == bindparam("run"),
        SIGNALS.c.name == bindparam("name"),
        or_(
            SIGNALS.c.taken_step.is_(None),
            and_(
                SIGNALS.c.taken_step == bindparam("step"),
                SIGNALS.c.taken_index == bindparam("index"),
            ),
        ),
    )
    .order_by(SIGNALS.c.id)
    .limit(1)
)
_TAKE = (
    update(SIGNALS)
    .where(SIGNALS.c.id == bindparam("signal"))
    .values(taken_step=bindparam("step"), taken_index=bindparam("index"))
)


async def take_signal(db: Db, run_id: str, key: TaskKey, name: str) -> Signal | None:
    """The oldest signal `name` no other task took, now taken by `key`; the one `key` took
    already, when it asks again (its run was resumed before its step finished)."""
    task = {"run": run_id, "name": name, "step": key.step_id, "index": key.task_index}
    row = (await db.execute(_FIRST_FOR, task)).first()
    if row is None:
        return None
    if row.taken_step is None:
        await db.execute(_TAKE, {"signal": row.id, "step": key.step_id, "index": key.task_index})
    return Signal(row.name, row.payload)


async def park(
    db: Db, run_id: str, until: datetime | None, signals: Sequence[str], children: Sequence[str]
) -> bool:
    """Give up the run's lease until `until` (None: until a signal or a child wakes it);
    False, changing nothing, when a signal the run waits for is already there or one of its
    child runs `children` has ended. A child that ends after this looks wakes the parked run
    (`runs.end`): it locks this run's row too, after this transaction."""
    if signals:
        waiting = select(exists().where(_untaken(run_id, list(signals))))
        if (await db.execute(waiting)).scalar():
            return False
    if children:  # one ended, or went with its flow: fewer of them are still active
        waited = set(children)
        active = RUNS.c.status.in_([status.value for status in ACTIVE_RUN_STATUSES])
        count = select(func.count()).where(RUNS.c.id.in_(list(waited)), active)
        if (await db.execute(count)).scalar_one() < len(waited):
            return False
    await db.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(lease_owner=None, lease_expires_at=until or SIGNAL_ONLY)
    )
    return True


_STATUS = select(RUNS.c.status).where(RUNS.c.id == bindparam("run"))
_COUNT = select(func.count()).select_from(SIGNALS).where(SIGNALS.c.run_id == bindparam("run"))


async def run_status(db: Db, run_id: str) -> RunStatus | None:
    status = (await db.execute(_STATUS, {"run": run_id})).scalar_one_or_none()
    return None if status is None else RunStatus(status)


async def signal_count(db: Db, run_id: str) -> int:
    return int((await db.execute(_COUNT, {"run": run_id})).scalar_one())


async def send(db: Db, run_id: str, name: str, payload: Any, at: datetime) -> bool:
    """Keep the signal for the run, and wake the run if it is parked (no lease owner): it
    looks at its waits again. True when it woke a parked run."""
    await db.execute(insert(SIGNALS).values(run_id=run_id, name=name, payload=payload, sent_at=at))
    return await runs.wake_parked(db, run_id, at)

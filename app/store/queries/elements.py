"""Shared fan-outs: the statements that hand a fan-out's elements to any worker, claim them,
renew their leases and record their ends (docs/architecture.md, "Fan-out across workers").

An element still to run is a task row with a `lease_expires_at`: queued (claimable from that
time) or running (under its worker's lease until then). Only shared elements have one, so the
partial index `(run_id, step_id, lease_expires_at)` holds exactly the work left; an element
that ends leaves it (`lease_expires_at` NULL). The fan-out's row (`fan_outs`) is the lock that
orders, for one fan-out, the claims of its elements and their ends (the ends after the run's
row, as every write of a run locks it first), so the counts it keeps (`remaining`, `running`)
are exact, and the end that leaves no element (or the first failure) is one transaction, which
wakes the parked run once. The elements themselves are locked `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from app.domain.elements import (
    ClaimedElement,
    ElementFinish,
    ElementWork,
    FanOutResult,
    SharedFanOut,
)
from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus
from app.store.models import FAN_OUTS, RUNS, TASKS
from app.store.queries import events, runs
from app.store.session import Db
from app.store.types import UTCDateTime

# How many fan-outs one claim looks at: each is one more statement.
FAN_OUTS_PER_CLAIM = 8

_OF_FAN_OUT = (TASKS.c.run_id == bindparam("run"), TASKS.c.step_id == bindparam("step"))
_FAN_OUT_ROW = (FAN_OUTS.c.run_id == bindparam("run"), FAN_OUTS.c.step_id == bindparam("step"))
_TO_RUN = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)


async def share(held: events.Recorder, run_id: str, fan_out: SharedFanOut, at: datetime) -> None:
    """Make the fan-out's elements claimable, in the transaction that holds the run's lease:
    element 0 is the step's own row (queued when the step was released), 1..n-1 are new."""
    db = held.db
    step_id = fan_out.step_id
    where = {"run": run_id, "step": step_id}
    definition_id = (
        await db.execute(select(RUNS.c.definition_id).where(RUNS.c.id == run_id))
    ).scalar_one()
    await db.execute(delete(FAN_OUTS).where(*_FAN_OUT_ROW), where)  # one left by a crash
    items = fan_out.items
    await db.execute(
        update(TASKS)
        .where(*_OF_FAN_OUT, TASKS.c.task_index == 0)
        .values(
            status=TaskStatus.QUEUED.value,
            inputs=bindparam("item"),
            available_at=at,
            lease_owner=None,
            lease_expires_at=at,
        ),
        {**where, "item": items[0]},
    )
    if len(items) > 1:
        await db.execute(
            insert(TASKS),
            [
                {
                    "run_id": run_id,
                    "step_id": step_id,
                    "task_index": index,
                    "status": TaskStatus.QUEUED.value,
                    "attempts": 0,
                    "inputs": items[index],
                    "available_at": at,
                    "lease_expires_at": at,
                }
                for index in range(1, len(items))
            ],
        )
        queued = TaskStatus.QUEUED
        await held.record(
            [events.step_event(run_id, step_id, i, queued, at) for i in range(1, len(items))]
        )
    await db.execute(
        insert(FAN_OUTS).values(
            run_id=run_id,
            step_id=step_id,
            definition_id=definition_id,
            scope=dict(fan_out.scope),
            last_error=runs.error_value(fan_out.last_error),
            size=len(items),
            remaining=len(items),
            running=0,
            max_concurrency=fan_out.max_concurrency,
            failed=False,
            created_at=at,
        )
    )


# Fan-outs with elements left, oldest first; one claimer at a time each. Not SKIP LOCKED: the
# ends of a fan-out's elements hold its row too, all the time while they run, and a claimer
# that skipped it would find nothing to do; it waits instead, a batch's commit at most (the
# claim then locks its elements SKIP LOCKED, and never waits while holding them).
_OPEN_FAN_OUTS = (
    select(FAN_OUTS)
    .where(FAN_OUTS.c.remaining > 0, FAN_OUTS.c.failed.is_(False))
    .order_by(FAN_OUTS.c.created_at)
    .limit(FAN_OUTS_PER_CLAIM)
    .with_for_update()
)
_CLAIMABLE = (
    select(TASKS.c.id, TASKS.c.task_index, TASKS.c.status, TASKS.c.inputs, TASKS.c.attempts)
    .where(*_OF_FAN_OUT, TASKS.c.lease_expires_at <= bindparam("now", type_=UTCDateTime))
    .order_by(TASKS.c.lease_expires_at)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)


async def claim(
    db: Db, owner: str, now: datetime, lease_seconds: float, limit: int
) -> tuple[list[ElementWork], list[str]]:
    """Claim up to `limit` elements of shared fan-outs for `owner`, each leased to it until
    `now + lease_seconds`: queued ones within their fan-out's `max_concurrency`, and running
    ones whose lease expired (their worker died: taken over, not counted again). Also the
    ids of the watched runs whose elements it started (their events were written)."""
    fan_outs = list((await db.execute(_OPEN_FAN_OUTS)).all())
    if not fan_outs:
        return [], []
    ids = list({row.run_id for row in fan_outs})
    running_runs = {
        row.id: row.watched
        for row in await db.execute(
            select(RUNS.c.id, RUNS.c.watched).where(
                RUNS.c.id.in_(ids), RUNS.c.status == RunStatus.RUNNING.value
            )
        )
    }
    works: list[ElementWork] = []
    watched: list[str] = []
    expires = now + timedelta(seconds=lease_seconds)
    for fan_out in fan_outs:
        where = {"run": fan_out.run_id, "step": fan_out.step_id}
        if fan_out.run_id not in running_runs:  # the run ended (cancelled, failed) meanwhile
            await db.execute(delete(FAN_OUTS).where(*_FAN_OUT_ROW), where)
            continue
        if limit <= 0:
            break
        rows = (await db.execute(_CLAIMABLE, {**where, "now": now, "limit": limit})).all()
        allowance = fan_out.max_concurrency - fan_out.running
        taken = []
        for row in rows:
            if row.status == TaskStatus.RUNNING.value:
                taken.append(row)  # taken over: it counts as running already
            elif row.status == TaskStatus.QUEUED.value and allowance > 0:
                allowance -= 1
                taken.append(row)
        if not taken:
            continue
        limit -= len(taken)
        newly = sum(1 for row in taken if row.status == TaskStatus.QUEUED.value)
        await db.execute(
            update(TASKS)
            .where(TASKS.c.id.in_([row.id for row in taken]))
            .values(
                status=TaskStatus.RUNNING.value,
                lease_owner=owner,
                lease_expires_at=expires,
                started_at=func.coalesce(TASKS.c.started_at, now),
            )
        )
        if newly:
            await db.execute(
                update(FAN_OUTS).where(*_FAN_OUT_ROW).values(running=FAN_OUTS.c.running + newly),
                where,
            )
        if running_runs[fan_out.run_id]:
            running = TaskStatus.RUNNING
            recorder = events.Recorder(db, watched=True)
            await recorder.record(
                [
                    events.step_event(fan_out.run_id, fan_out.step_id, row.task_index, running, now)
                    for row in taken
                ]
            )
            watched.append(fan_out.run_id)
        works.append(
            ElementWork(
                fan_out.run_id,
                fan_out.step_id,
                fan_out.definition_id,
                fan_out.scope,
                RunError.of(fan_out.last_error),
                [
                    ClaimedElement(row.id, row.task_index, row.inputs, row.attempts)
                    for row in sorted(taken, key=lambda row: row.task_index)
                ],
            )
        )
    return works, watched


async def renew(
    db: Db, owner: str, task_ids: Collection[int], now: datetime, lease_seconds: float
) -> set[int]:
    """Extend `owner`'s leases on the elements; the ids of those it no longer holds (taken
    over by another worker, or cancelled with their run or their fan-out)."""
    if not task_ids:
        return set()
    ids = list(task_ids)
    mine = _held_by(owner, ids)
    expires = now + timedelta(seconds=lease_seconds)
    await db.execute(update(TASKS).where(*mine).values(lease_expires_at=expires))
    held = set((await db.execute(select(TASKS.c.id).where(*mine))).scalars())
    return set(ids) - held


async def release(db: Db, owner: str, task_ids: Collection[int], now: datetime) -> None:
    """End `owner`'s leases on the elements now: the next claim takes them over (as a dead
    worker's, not counted again against `max_concurrency`)."""
    if task_ids:
        await db.execute(
            update(TASKS).where(*_held_by(owner, list(task_ids))).values(lease_expires_at=now)
        )


def _held_by(owner: str, task_ids: list[int]) -> tuple[ColumnElement[bool], ...]:
    """Those of the elements `owner` still runs under its lease."""
    return (
        TASKS.c.id.in_(task_ids),
        TASKS.c.lease_owner == owner,
        TASKS.c.status == TaskStatus.RUNNING.value,
    )


_LOCK_FAN_OUT = (
    select(FAN_OUTS.c.remaining, FAN_OUTS.c.failed).where(*_FAN_OUT_ROW).with_for_update()
)
_ELEMENT_ENDED = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("task"))
    .values(
        status=bindparam("state"),
        outputs=bindparam("result"),
        error=bindparam("failure"),
        attempts=bindparam("attempt"),
        finished_at=bindparam("at"),
        lease_expires_at=None,
    )
)
_CANCEL_REST = (
    update(TASKS)
    .where(*_OF_FAN_OUT, TASKS.c.status.in_(_TO_RUN))
    .values(status=TaskStatus.CANCELLED.value, finished_at=bindparam("at"), lease_expires_at=None)
)


async def finish(
    db: Db, owner: str, finishes: Sequence[ElementFinish]
) -> tuple[set[int], list[str], list[str]]:
    """Record the ends of elements `owner` still holds (the others write nothing): (the ids
    of the elements recorded, the runs woken, the watched runs given events).

    Per fan-out, in one order (by run and step, so two finishers cannot deadlock): the run's
    row, then the fan-out's, then its elements. A failed element cancels the elements not yet
    ended; the end that leaves none, or the first failure, wakes the parked run with the
    locking wake a child's end uses (`runs.wake_parent`): a run parking at that moment either
    sees the fan-out ended (`any_ended`) or is woken."""
    groups: dict[tuple[str, str], list[ElementFinish]] = defaultdict(list)
    for element in finishes:
        groups[(element.run_id, element.step_id)].append(element)
    written: set[int] = set()
    woken: list[str] = []
    watched: list[str] = []
    for (run_id, step_id), group in sorted(groups.items()):
        where = {"run": run_id, "step": step_id}
        recorder = await events.locked(db, run_id)
        fan_out = (await db.execute(_LOCK_FAN_OUT, where)).first()
        if fan_out is None:  # settled, or the run ended or ran again: nothing to record
            continue
        mine = select(TASKS.c.id).where(*_held_by(owner, [element.task_id for element in group]))
        held = set((await db.execute(mine)).scalars())
        ended = [element for element in group if element.task_id in held]
        if not ended:
            continue
        written |= held
        await db.execute(
            _ELEMENT_ENDED,
            [
                {
                    "task": element.task_id,
                    "state": element.status.value,
                    "result": element.outputs,
                    "failure": runs.error_value(element.error),
                    "attempt": element.attempts,
                    "at": element.at,
                }
                for element in ended
            ],
        )
        await recorder.record(
            [
                events.step_event(
                    run_id,
                    step_id,
                    element.index,
                    element.status,
                    element.at,
                    element.attempts,
                    runs.error_value(element.error),
                )
                for element in ended
            ]
        )
        completed = sum(1 for element in ended if element.status is TaskStatus.COMPLETED)
        failed = not fan_out.failed and completed < len(ended)
        at = max(element.at for element in ended)
        if failed:
            await recorder.record_from(events.CANCELLED_OF_STEP_BEFORE, {**where, "at": at})
            await db.execute(_CANCEL_REST, {**where, "at": at})
        counts: dict[str, Any] = {
            "remaining": FAN_OUTS.c.remaining - completed,
            "running": FAN_OUTS.c.running - len(ended),
        }
        if failed:
            counts["failed"] = True
        await db.execute(update(FAN_OUTS).where(*_FAN_OUT_ROW).values(**counts), where)
        if failed or fan_out.remaining == completed:
            await runs.wake_parent(db, run_id, at)
            woken.append(run_id)
        if recorder.watched:
            watched.append(run_id)
    return written, woken, watched


_ELEMENTS = (
    select(TASKS.c.task_index, TASKS.c.status, TASKS.c.outputs, TASKS.c.error)
    .where(*_OF_FAN_OUT)
    .order_by(TASKS.c.task_index)
)
_FIRST_FAILED = (
    select(TASKS.c.task_index, TASKS.c.error)
    .where(*_OF_FAN_OUT, TASKS.c.status == TaskStatus.FAILED.value)
    .order_by(TASKS.c.finished_at, TASKS.c.task_index)
    .limit(1)
)
_FAN_OUT_STATE = select(FAN_OUTS.c.remaining, FAN_OUTS.c.failed).where(*_FAN_OUT_ROW)


async def result(db: Db, run_id: str, step_id: str) -> FanOutResult | None:
    """The fan-out's end: its elements' outputs in element order, or its first failed element;
    None while elements are left to run."""
    where = {"run": run_id, "step": step_id}
    state = (await db.execute(_FAN_OUT_STATE, where)).first()
    if state is not None and state.remaining > 0 and not state.failed:
        return None
    failed = (await db.execute(_FIRST_FAILED, where)).first()
    if failed is not None:
        return FanOutResult(
            failed=TaskKey(step_id, failed.task_index), error=RunError.of(failed.error)
        )
    rows = (await db.execute(_ELEMENTS, where)).all()
    if any(row.status != TaskStatus.COMPLETED.value for row in rows):
        return None  # (no fan-out row: it was never shared, or it ran again)
    return FanOutResult(outputs=[row.outputs for row in rows])


async def any_ended(db: Db, run_id: str, step_ids: Sequence[str]) -> bool:
    """Whether one of the run's shared fan-outs `step_ids` has ended (a parking run then looks
    again instead); read under the run's lock, which every element's end takes first."""
    ended = select(func.count()).where(
        FAN_OUTS.c.run_id == run_id,
        FAN_OUTS.c.step_id.in_(list(step_ids)),
        or_(FAN_OUTS.c.remaining <= 0, FAN_OUTS.c.failed.is_(True)),
    )
    return bool((await db.execute(ended)).scalar_one())


async def expire_all(db: Db, now: datetime) -> None:
    """Expire the leases of every running element (a single-process store at start: their
    worker was this process, before it stopped): they are claimed again at once."""
    await db.execute(
        update(TASKS)
        .where(TASKS.c.status == TaskStatus.RUNNING.value, TASKS.c.lease_expires_at > now)
        .values(lease_expires_at=now)
    )


async def settled(db: Db, run_id: str, step_id: str) -> None:
    """The run settled the fan-out's step: its row goes."""
    await db.execute(delete(FAN_OUTS).where(*_FAN_OUT_ROW), {"run": run_id, "step": step_id})


async def forget(db: Db, run_id: str) -> None:
    """The run runs again (a retry): its fan-outs start over."""
    await db.execute(delete(FAN_OUTS).where(FAN_OUTS.c.run_id == run_id))


async def shared_steps(db: Db, run_id: str) -> frozenset[str]:
    """The run's steps whose fan-out is in the workers' hands (or ended, not yet settled)."""
    statement = select(FAN_OUTS.c.step_id).where(FAN_OUTS.c.run_id == run_id)
    return frozenset((await db.execute(statement)).scalars())

"""The run queue: claiming runs, holding their leases, taking over the runs of dead workers.

A run is executed by one worker at a time, the holder of its lease (`flow_runs.lease_owner`
until `lease_expires_at`). A worker claims work in batches: queued runs, and running runs whose
lease expired (their worker died or stalled), with `FOR UPDATE SKIP LOCKED`, so concurrent
claimers never wait for each other nor claim the same run. The worker renews its leases while
it runs them; every write it makes for a run first locks the run row and checks the lease
(`hold`, or `PG_HOLD` at the head of PostgreSQL's one-statement transitions), so a worker that
lost its lease can never record a result. docs/architecture.md explains why this is safe under
concurrency and crashes.

Times come from the workers' clocks (UTC), as for every timestamp of the store: machines that
share a database keep their clocks in sync (NTP), well within a lease.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, literal_column, select, update
from sqlalchemy.dialects import postgresql

from app.domain.records import Claim
from app.domain.runs import RunStatus
from app.errors import LeaseLostError
from app.store.models import RUNS
from app.store.queries import events
from app.store.session import Db


def _held(run: Any, owner: Any, now: Any) -> ColumnElement[bool]:
    """The one definition of a held lease: the run is running, under `owner`'s unexpired
    lease."""
    return and_(
        RUNS.c.id == run,
        RUNS.c.lease_owner == owner,
        RUNS.c.status == RunStatus.RUNNING.value,
        RUNS.c.lease_expires_at > now,
    )


# Built once: `hold` starts every portable write of a run.
_HELD = (
    select(RUNS.c.watched, RUNS.c.parent_run_id)
    .where(_held(bindparam("run_id"), bindparam("owner"), bindparam("now")))
    .with_for_update()
)
# The same check as the head of PostgreSQL's one-statement transitions (queries/tasks.py):
# the `run` CTE, on $1 run id, $2 lease owner, $3 now. Empty when the lease is not held.
_PG_HELD = select(RUNS.c.id, RUNS.c.watched, RUNS.c.parent_run_id).where(
    _held(literal_column("$1"), literal_column("$2"), literal_column("$3"))
)
PG_HOLD = (
    "WITH run AS (\n"
    + str(
        _PG_HELD.with_for_update().compile(
            dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
            compile_kwargs={"literal_binds": True},
        )
    )
    + "\n)"
)


async def hold(db: Db, run_id: str, owner: str, now: datetime) -> events.Recorder:
    """Lock the run for the caller's transaction, or raise `LeaseLostError` when `owner` no
    longer holds its unexpired lease (or the run ended elsewhere). The transaction's writer
    of the run's events."""
    parameters = {"run_id": run_id, "owner": owner, "now": now}
    held = (await db.execute(_HELD, parameters)).first()
    if held is None:
        raise LeaseLostError(f"run {run_id}: this worker no longer holds its lease")
    return events.Recorder(db, held.watched, held.parent_run_id)


def lease_values(owner: str, now: datetime, lease_seconds: float) -> dict[str, Any]:
    """The columns that give `owner` the run's lease from `now`."""
    return {"lease_owner": owner, "lease_expires_at": now + timedelta(seconds=lease_seconds)}


async def claim(
    db: Db, owner: str, now: datetime, lease_seconds: float, limit: int
) -> tuple[list[Claim], list[str]]:
    """Claim up to `limit` runs: first those whose lease expired, then queued ones, oldest
    first.

    The rows are locked `FOR UPDATE SKIP LOCKED` until the caller commits, so a concurrent
    claimer skips them instead of waiting or claiming them twice. Each kind is its own query
    on the (status, created_at) index, which hands rows over in order: the scan stops at
    `limit` rows, and locks no more (InnoDB locks every row a scan examines).

    Also the ids of the watched runs it started, whose `running` events it wrote.
    """
    # A running run always has a lease's end: its worker's, or the time a parked run wakes.
    expired = and_(RUNS.c.status == RunStatus.RUNNING.value, RUNS.c.lease_expires_at <= now)
    found = await _lock_oldest(db, expired, limit, RUNS.c.lease_expires_at)
    if len(found) < limit:
        queued = RUNS.c.status == RunStatus.QUEUED.value
        found += await _lock_oldest(db, queued, limit - len(found), RUNS.c.created_at)
    if not found:
        return [], []
    await db.execute(
        update(RUNS)
        .where(RUNS.c.id.in_([row.id for row in found]))
        .values(status=RunStatus.RUNNING.value, **lease_values(owner, now, lease_seconds))
    )
    started = [row.id for row in found if row.status == RunStatus.QUEUED.value and row.watched]
    await events.Recorder(db, watched=True).record(
        [events.run_event(run_id, RunStatus.RUNNING, now) for run_id in started]
    )
    claims = [
        Claim(
            row.id,
            row.definition_id,
            row.inputs,
            row.status == RunStatus.RUNNING.value,
            row.traceparent,
            woken=row.status == RunStatus.RUNNING.value and row.lease_owner is None,
        )
        for row in found
    ]
    return claims, started


async def _lock_oldest(
    db: Db, condition: ColumnElement[bool], limit: int, oldest: Any
) -> list[Any]:
    """Up to `limit` rows matching `condition`, `oldest` first, locked; each kind walks its
    own index: `(status, created_at)` for queued runs, `(status, lease_expires_at)` for runs
    to take over or wake, which stops at the first not yet due however many are parked."""
    statement = (
        select(
            RUNS.c.id,
            RUNS.c.definition_id,
            RUNS.c.inputs,
            RUNS.c.status,
            RUNS.c.traceparent,
            RUNS.c.watched,
            RUNS.c.lease_owner,
        )
        .where(condition)
        .order_by(oldest)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await db.execute(statement)).all())


async def renew(
    db: Db, owner: str, run_ids: Collection[str], now: datetime, lease_seconds: float
) -> set[str]:
    """Extend `owner`'s leases on `run_ids`; the ids of those it no longer holds.

    A run is lost when another worker took it over or it ended elsewhere (cancelled). Rows
    locked by this worker's own writes are skipped: they are held, and renewed next time.
    """
    if not run_ids:
        return set()
    ids = list(run_ids)
    mine = and_(
        RUNS.c.id.in_(ids),
        RUNS.c.lease_owner == owner,
        RUNS.c.status == RunStatus.RUNNING.value,
    )
    lockable = select(RUNS.c.id).where(mine).with_for_update(skip_locked=True)
    renewable = list((await db.execute(lockable)).scalars())
    if renewable:
        await db.execute(
            update(RUNS)
            .where(RUNS.c.id.in_(renewable))
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        )
    held = (await db.execute(select(RUNS.c.id).where(mine))).scalars()
    return set(ids) - set(held)


async def release(db: Db, owner: str, run_ids: Sequence[str], now: datetime) -> None:
    """Give up `owner`'s leases on `run_ids`: any worker may take those runs over at once."""
    if run_ids:
        await db.execute(
            update(RUNS)
            .where(RUNS.c.id.in_(list(run_ids)), RUNS.c.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=now)
        )


async def expire_all(db: Db, now: datetime) -> int:
    """Expire every running run's lease (a single-process store at start: their worker was
    this process, before it stopped); how many. Parked runs (no owner) sleep on."""
    result = await db.execute(
        update(RUNS)
        .where(RUNS.c.status == RunStatus.RUNNING.value, RUNS.c.lease_owner.is_not(None))
        .values(lease_owner=None, lease_expires_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]

"""The run queue: claiming runs, holding their leases, taking over the runs of dead workers.

A run is executed by one worker at a time, the holder of its lease (`flow_runs.lease_owner`
until `lease_expires_at`). A worker claims work in batches: queued runs, and running runs whose
lease expired (their worker died or stalled), with `FOR UPDATE SKIP LOCKED`, so concurrent
claimers never wait for each other nor claim the same run. The worker renews its leases while
it runs them; every write it makes for a run first locks the run row and checks the lease
(`hold`, or `PG_HOLD` at the head of PostgreSQL's one-statement transitions), so a worker that
lost its lease can never record a result. Queued runs are claimed highest priority first, then
oldest first, and never more runs of a concurrency key at once than its limit (`_take_queued`).
docs/architecture.md explains why this is safe under concurrency and crashes.

Times come from the workers' clocks (UTC), as for every timestamp of the store: machines that
share a database keep their clocks in sync (NTP), well within a lease.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import RUN_EVENT, Claim
from app.domain.runs import RunStatus
from app.errors import LeaseLostError
from app.store.models import CONCURRENCY_KEYS, RUNS
from app.store.notifications import RUN_EVENTS
from app.store.queries import events
from app.store.session import Db
from app.store.types import UTCDateTime


def _held(run: Any, owner: Any, now: Any, columns: Any = RUNS.c) -> ColumnElement[bool]:
    """The one definition of a held lease: the run is running, under `owner`'s unexpired
    lease (`columns`: the run table's, or those of a query of it)."""
    return and_(
        columns.id == run,
        columns.lease_owner == owner,
        columns.status == RunStatus.RUNNING.value,
        columns.lease_expires_at > now,
    )


# Built once: `hold` starts every portable write of a run.
_HELD = (
    select(RUNS.c.watched, RUNS.c.parent_run_id)
    .where(_held(bindparam("run_id"), bindparam("owner"), bindparam("now")))
    .with_for_update()
)
# The same check as the head of PostgreSQL's one-statement transitions (queries/tasks.py):
# the `run` CTE, on $1 run id, $2 lease owner, $3 now. Empty when the lease is not held.
#
# The row is found by its primary key alone and locked, and only then is the lease checked:
# with the lease's conditions in the same WHERE, the planner may walk a status index instead,
# through every running run, whenever its statistics are stale (a new database's first
# minute, before autovacuum's first ANALYZE), which made each step's finish cost O(runs
# running).
_PG_LOCKED = (
    select(
        RUNS.c.id,
        RUNS.c.watched,
        RUNS.c.parent_run_id,
        RUNS.c.lease_owner,
        RUNS.c.status,
        RUNS.c.lease_expires_at,
    )
    .where(RUNS.c.id == literal_column("$1"))
    .with_for_update()
    .cte("locked")
    .prefix_with("MATERIALIZED")
)
_PG_HELD = select(_PG_LOCKED.c.id, _PG_LOCKED.c.watched, _PG_LOCKED.c.parent_run_id).where(
    _held(literal_column("$1"), literal_column("$2"), literal_column("$3"), _PG_LOCKED.c)
)
PG_HOLD = (
    "WITH run AS (\n"
    + str(
        _PG_HELD.compile(
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
    """Claim up to `limit` runs: first those whose lease's end passed (a dead worker's, or a
    parked run's wake-up), longest overdue first, then queued ones, highest priority first,
    then oldest, within their concurrency limits (`_take_queued`).

    The rows are locked `FOR UPDATE SKIP LOCKED` until the caller commits, so a concurrent
    claimer skips them instead of waiting or claiming them twice. Each kind is its own query
    on an index that hands rows over in order ((status, lease_expires_at) and (status,
    priority DESC, created_at)): the scan stops at `limit` rows, and locks no more (InnoDB
    locks every row a scan examines).

    Also the ids of the watched runs it started, whose `running` events it wrote.
    """
    # A running run always has a lease's end: its worker's, or the time a parked run wakes.
    found = await _lock_due(db, now, limit)
    if len(found) < limit:
        found += await _take_queued(db, limit - len(found))
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
            limited=getattr(row, "concurrency_key", None) is not None,
        )
        for row in found
    ]
    return claims, started


# PostgreSQL's claim, in one statement (`postgres.PostgresPath.claim`): the due runs, then the
# queued runs before the first with a concurrency key, as `claim` takes them; what comes from
# the first keyed run on is left to `claim`, which counts the keys' runs under their locks.
# $1 owner, $2 now, $3 the lease's end, $4 limit. One row per run taken, in the order `claim`
# takes them (due runs numbered below 1, queued from 1), each telling whether
# a keyed run was met (and a row with a NULL id when none was taken). The `running` event of
# a watched queued run is written, and its watchers notified, with the commit. The rows are
# updated by their physical address (locked, it cannot change): with a new database's stale
# statistics, an update by id took a sequential scan of the table.
PG_CLAIM = f"""WITH due AS (
    SELECT id, ctid, lease_owner IS NULL AS woken, lease_expires_at FROM flow_runs
    WHERE status = 'running' AND lease_expires_at <= $2
    ORDER BY lease_expires_at LIMIT $4
    FOR UPDATE SKIP LOCKED
), queued AS (
    SELECT id, ctid, concurrency_key IS NOT NULL AS keyed, priority, created_at FROM flow_runs
    WHERE status = 'queued'
    ORDER BY priority DESC, created_at LIMIT $4 - (SELECT count(*) FROM due)
    FOR UPDATE SKIP LOCKED
), ranked AS (
    SELECT id, ctid, keyed, row_number() OVER (ORDER BY priority DESC, created_at) AS n
    FROM queued
), first_keyed AS (
    SELECT min(n) AS n FROM ranked WHERE keyed
), taken AS (
    SELECT id, ctid, true AS taken_over, woken,
        row_number() OVER (ORDER BY lease_expires_at) - (SELECT count(*) FROM due) AS n
    FROM due
    UNION ALL
    SELECT id, ctid, false, false, n FROM ranked
    WHERE n < COALESCE((SELECT n FROM first_keyed), 9223372036854775807)
), claimed AS (
    UPDATE flow_runs AS r
    SET status = 'running', lease_owner = $1, lease_expires_at = $3
    FROM taken
    WHERE r.ctid = taken.ctid
    RETURNING r.id, r.definition_id, r.inputs, taken.taken_over, r.traceparent, taken.woken,
        r.watched AND NOT taken.taken_over AS started_watched, taken.n
), started_events AS (
    INSERT INTO run_events (run_id, type, status, at)
    SELECT id, '{RUN_EVENT}', '{RunStatus.RUNNING.value}', $2 FROM claimed
    WHERE started_watched
    RETURNING pg_notify('{RUN_EVENTS}', run_id)
)
SELECT c.id, c.definition_id, c.inputs, c.taken_over, c.traceparent, c.woken,
    (SELECT n FROM first_keyed) IS NOT NULL AS keyed_met
FROM (SELECT 1) AS one LEFT JOIN claimed AS c ON true
ORDER BY c.n"""


# What a claim reads of each run it takes.
_CLAIMED = (
    RUNS.c.id,
    RUNS.c.definition_id,
    RUNS.c.inputs,
    RUNS.c.status,
    RUNS.c.traceparent,
    RUNS.c.watched,
)
# Built once: every claim runs it. The `(status, lease_expires_at)` index hands the runs over
# in order, and the scan stops at the first not yet due, however many runs are parked.
_DUE = (
    select(*_CLAIMED, RUNS.c.lease_owner)
    .where(
        RUNS.c.status == RunStatus.RUNNING.value,
        RUNS.c.lease_expires_at <= bindparam("now", type_=UTCDateTime),
    )
    .order_by(RUNS.c.lease_expires_at)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)


async def _lock_due(db: Db, now: datetime, limit: int) -> list[Any]:
    """Up to `limit` running runs due to be taken over or woken (their lease's end passed),
    the longest overdue first, locked."""
    return list((await db.execute(_DUE, {"now": now, "limit": limit})).all())


# Queued runs, by priority and age, within their keys' concurrency limits.

# How many times a claim looks again past runs whose key reached its limit; each time closes
# at least one more key. A claim that stops early leaves the rest to the next one.
MAX_QUEUED_ROUNDS = 8

_QUEUED_COLUMNS = (*_CLAIMED, RUNS.c.concurrency_key, RUNS.c.concurrency_limit)
_QUEUED = RUNS.c.status == RunStatus.QUEUED.value
_RUNNING = RUNS.c.status == RunStatus.RUNNING.value

# The keys whose running runs already reach their limit, as far as a read without locks can
# tell: a first guess, so that a claim does not walk their queued runs (each key is checked
# again under its lock before a run of it is taken).
_FULL_KEYS = (
    select(RUNS.c.concurrency_key)
    .where(_RUNNING, RUNS.c.concurrency_key.is_not(None))
    .group_by(RUNS.c.concurrency_key)
    .having(func.count() >= func.min(RUNS.c.concurrency_limit))
)
# A key's lock row: one claimer at a time counts the key's running runs and takes more.
_LOCK_KEYS = (
    select(CONCURRENCY_KEYS.c.name)
    .where(CONCURRENCY_KEYS.c.name.in_(bindparam("keys", expanding=True)))
    .with_for_update(skip_locked=True)
)
_RUNNING_OF_KEYS = (
    select(RUNS.c.concurrency_key, func.count())
    .where(
        _RUNNING,
        RUNS.c.concurrency_key.is_not(None),  # the partial index's condition, said outright
        RUNS.c.concurrency_key.in_(bindparam("keys", expanding=True)),
    )
    .group_by(RUNS.c.concurrency_key)
)


async def add_key(db: Db, key: str) -> None:
    """Add the lock row of a concurrency key, unless it exists (the run's creation does)."""
    bind = db if isinstance(db, AsyncConnection) else db.get_bind()
    dialect = bind.dialect.name
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(CONCURRENCY_KEYS).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(CONCURRENCY_KEYS).on_conflict_do_nothing()
    else:  # MariaDB, MySQL
        statement = insert(CONCURRENCY_KEYS).prefix_with("IGNORE")
    await db.execute(statement, {"name": key})


async def _take_queued(db: Db, limit: int) -> list[Any]:
    """Lock up to `limit` queued runs, highest priority first, then oldest, skipping those
    whose concurrency key already has its limit of runs running (those claimed here
    counted).

    Without a key among the first `limit` queued runs, that is one statement, the same as
    without concurrency limits. Otherwise the keys of the runs met are locked (their
    `concurrency_keys` rows, `FOR UPDATE SKIP LOCKED`, in one statement) and their running
    runs counted under those locks (one more), so that two claimers never take more runs of
    a key than its limit together (docs/architecture.md, "Concurrency and priority"); a key
    that is full, or locked by another claimer, is closed for this claim, and the claim looks
    again past its runs.
    """
    rows = await _lock_queued(db, limit, (), ())
    if all(row.concurrency_key is None for row in rows):
        return rows
    closed = set((await db.execute(_FULL_KEYS)).scalars())
    running: dict[str, int] = {}  # key -> its runs running, those taken here included
    taken: list[Any] = []
    asked = limit
    for round_ in range(MAX_QUEUED_ROUNDS):
        if round_:
            asked = limit - len(taken)
            rows = await _lock_queued(db, asked, [row.id for row in taken], closed)
        met = {row.concurrency_key for row in rows} - {None} - running.keys() - closed
        if met:
            running.update(await _lock_and_count(db, met))
            closed |= met - running.keys()  # another claimer is taking their runs: skip them
        skipped = False
        for row in rows:
            key = row.concurrency_key
            if key is None:
                taken.append(row)
            elif key not in closed and running[key] < row.concurrency_limit:
                running[key] += 1
                taken.append(row)
            else:  # full: its later runs wait too (first come, first served)
                closed.add(key)
                skipped = True
        if not skipped or len(rows) < asked or len(taken) >= limit:
            break
    return taken


def _queued_first(condition: ColumnElement[bool], limit: Any) -> Any:
    """Queued runs meeting `condition`, highest priority first, then oldest, locked."""
    return (
        select(*_QUEUED_COLUMNS)
        .where(condition)
        .order_by(RUNS.c.priority.desc(), RUNS.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


# Built once: every claim runs it.
_FIRST_QUEUED = _queued_first(_QUEUED, bindparam("limit", type_=Integer))


async def _lock_and_count(db: Db, keys: Collection[str]) -> dict[str, int]:
    """Lock the keys' rows (those another claimer holds are skipped), then count the running
    runs of each key locked, in a statement that starts once the locks are held."""
    locked = list((await db.execute(_LOCK_KEYS, {"keys": list(keys)})).scalars())
    if len(locked) < len(keys):
        await _restore_lost_keys(db, set(keys) - set(locked))
    if not locked:
        return {}
    counted = {row[0]: int(row[1]) for row in await db.execute(_RUNNING_OF_KEYS, {"keys": locked})}
    return {key: counted.get(key, 0) for key in locked}


async def _restore_lost_keys(db: Db, unlocked: Collection[str]) -> None:
    """Add back the rows of keys that have none (a run's creation adds them, but a restored
    backup or a hand-made cleanup may have lost them): without, their runs would never be
    claimed. The next claim locks them; the others were held by another claimer."""
    statement = select(CONCURRENCY_KEYS.c.name).where(CONCURRENCY_KEYS.c.name.in_(unlocked))
    existing = set((await db.execute(statement)).scalars())
    for key in set(unlocked) - existing:
        await add_key(db, key)


async def _lock_queued(
    db: Db, limit: int, taken: Sequence[str], closed: Collection[str]
) -> list[Any]:
    if not taken and not closed:
        return list((await db.execute(_FIRST_QUEUED, {"limit": limit})).all())
    condition = _QUEUED
    if taken:
        condition = and_(condition, RUNS.c.id.not_in(taken))
    if closed:
        open_key = or_(RUNS.c.concurrency_key.is_(None), RUNS.c.concurrency_key.not_in(closed))
        condition = and_(condition, open_key)
    return list((await db.execute(_queued_first(condition, limit))).all())


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

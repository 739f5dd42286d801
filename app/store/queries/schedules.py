"""Schedules (docs/architecture.md, "Schedules"). The unit of work owns each transaction.

The scheduler's round is one transaction: `lock_due` takes the due rows `FOR UPDATE SKIP
LOCKED` (another process's round takes the others, or none), `start_run` creates each
tick's run with the tick's idempotency key, and `fired` advances the row, all committed
together. A process that dies in between commits nothing: its rows are unlocked and due, and
the next round starts their ticks. Two rounds never hold one row, and a tick's run exists
once the row has left that tick behind, never twice (the key is unique per flow and user).
SQLite is one process: its write transactions follow one another.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.records import Creation, NewRunRow
from app.domain.runs import ACTIVE_RUN_STATUSES, RunStatus
from app.domain.schedules import Cron, Overlap, ScheduleOrigin, ScheduleRecord
from app.errors import storable_text
from app.store import notifications
from app.store.models import RUNS, SCHEDULES, USERS
from app.store.queries import runs, versions

_C = SCHEDULES.c
_READ = select(SCHEDULES, USERS.c.username, USERS.c.is_admin).join(
    USERS, USERS.c.id == _C.created_by
)
_ACTIVE = sorted(status.value for status in ACTIVE_RUN_STATUSES)
_DUE = (_C.next_fire_at.is_not(None), _C.next_fire_at <= bindparam("now"), _C.enabled)


class Schedules:
    """Reading and writing schedules, and the scheduler's round, in one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, record: ScheduleRecord) -> None:
        await self._session.execute(insert(SCHEDULES), [_row(record)])

    async def get(self, schedule_id: str) -> ScheduleRecord | None:
        found = await self._session.execute(_READ.where(_C.id == schedule_id))
        row = found.one_or_none()
        return None if row is None else _record(row._mapping)

    async def of_flow(self, flow: str) -> list[ScheduleRecord]:
        """The flow's schedules, oldest first."""
        found = await self._session.execute(
            _READ.where(_C.flow_name == flow).order_by(_C.created_at, _C.id)
        )
        return [_record(row._mapping) for row in found]

    async def count_of_flow(self, flow: str, origin: ScheduleOrigin | None = None) -> int:
        statement = select(func.count()).select_from(SCHEDULES).where(_C.flow_name == flow)
        if origin is not None:
            statement = statement.where(_C.origin == origin.value)
        return int((await self._session.execute(statement)).scalar_one())

    async def replace(self, record: ScheduleRecord) -> None:
        """Write the schedule's fields as `record` has them (PATCH)."""
        values = _row(record)
        del values["id"]
        await self._session.execute(update(SCHEDULES).where(_C.id == record.schedule_id), values)

    async def delete(self, schedule_id: str) -> bool:
        deleted = await self._session.execute(delete(SCHEDULES).where(_C.id == schedule_id))
        return bool(deleted.rowcount)  # type: ignore[attr-defined]

    async def replace_declared(self, flow: str, records: Sequence[ScheduleRecord]) -> None:
        """The flow's declared schedules become `records` (those of its newest version)."""
        await self._session.execute(
            delete(SCHEDULES).where(
                _C.flow_name == flow, _C.origin == ScheduleOrigin.DEFINITION.value
            )
        )
        if records:
            await self._session.execute(insert(SCHEDULES), [_row(record) for record in records])

    # The scheduler's round.

    async def due(self, now: datetime, limit: int) -> list[ScheduleRecord]:
        """Up to `limit` due schedules, most overdue first, read, not locked (what they need
        is loaded before the round's transaction)."""
        found = await self._session.execute(
            _READ.where(*_DUE).order_by(_C.next_fire_at).limit(limit), {"now": now}
        )
        return [_record(row._mapping) for row in found]

    async def active_runs(self, run_ids: Collection[str]) -> set[str]:
        """Those of the runs that are queued or running."""
        if not run_ids:
            return set()
        found = await self._session.execute(
            select(RUNS.c.id).where(RUNS.c.id.in_(list(run_ids)), RUNS.c.status.in_(_ACTIVE))
        )
        return {str(run_id) for run_id in found.scalars()}

    async def lock_due(self, now: datetime, limit: int) -> list[ScheduleRecord]:
        """Up to `limit` due schedules, most overdue first, locked until the transaction
        ends; rows another process's round holds are skipped. Their rows alone are locked
        (MariaDB has no `FOR UPDATE OF`: no join here), so their owner is not read."""
        statement = (
            select(SCHEDULES)
            .where(*_DUE)
            .order_by(_C.next_fire_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        found = await self._session.execute(statement, {"now": now})
        return [_record(row._mapping) for row in found]

    async def latest_version(self, flow: str) -> tuple[int, int]:
        """(id, number) of the flow's latest version."""
        return await versions.locate(self._session, flow, None)

    async def run_status(self, run_id: str) -> RunStatus | None:
        """The status of a run; None when it no longer exists."""
        found = await self._session.execute(select(RUNS.c.status).where(RUNS.c.id == run_id))
        status = found.scalar_one_or_none()
        return None if status is None else RunStatus(status)

    async def is_current(self, definition_id: int) -> bool:
        """Whether the version is still its flow's latest (a round asks once per version)."""
        return await versions.is_current(self._session, definition_id, latest_only=True)

    async def start_run(self, run: NewRunRow) -> Creation:
        """Create a tick's queued run (its version checked current by the caller, in this
        transaction), unless its key made one already (`KEY_TAKEN`)."""
        assert run.idempotency_key is not None
        taken = await runs.id_for_key(
            self._session, run.idempotency_key, run.flow_name, run.created_by
        )
        if taken is not None:
            return Creation.KEY_TAKEN
        await runs.create(self._session, run)
        return Creation.CREATED

    async def runs_queued(self) -> None:
        """Tell the workers, once this transaction commits, that runs were queued."""
        await notifications.notify(self._session, notifications.RUNS_QUEUED)

    async def fired(
        self,
        schedule_id: str,
        tick: datetime,
        next_fire_at: datetime,
        run_id: str | None,
        error: str | None,
    ) -> None:
        """The tick is handled: the row waits for `next_fire_at`. `run_id`: the run it
        started (None: it started none, and the previous run stays the one to watch)."""
        values: dict[str, Any] = {
            "last_fired_at": tick,
            "next_fire_at": next_fire_at,
            "last_error": None if error is None else storable_text(error),
        }
        if run_id is not None:
            values["last_run_id"] = run_id
        await self._session.execute(update(SCHEDULES).where(_C.id == schedule_id), values)

    async def earliest(self) -> datetime | None:
        """When the next enabled schedule is due."""
        found = await self._session.execute(
            select(func.min(_C.next_fire_at)).where(_C.enabled, _C.next_fire_at.is_not(None))
        )
        earliest: datetime | None = found.scalar_one_or_none()
        return earliest


def _row(record: ScheduleRecord) -> dict[str, Any]:
    return {
        "id": record.schedule_id,
        "flow_name": record.flow,
        "cron": record.cron.expression,
        "timezone": record.cron.timezone,
        "inputs": dict(record.inputs),
        "overlap": record.overlap.value,
        "enabled": record.enabled,
        "origin": record.origin.value,
        "created_by": record.created_by,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "next_fire_at": record.next_fire_at,
        "last_fired_at": record.last_fired_at,
        "last_run_id": record.last_run_id,
        "last_error": record.last_error,
    }


def _record(row: RowMapping) -> ScheduleRecord:
    return ScheduleRecord(
        schedule_id=row["id"],
        flow=row["flow_name"],
        cron=Cron(row["cron"], row["timezone"]),
        inputs=row["inputs"] or {},
        overlap=Overlap(row["overlap"]),
        enabled=bool(row["enabled"]),
        origin=ScheduleOrigin(row["origin"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        next_fire_at=row["next_fire_at"],
        last_fired_at=row["last_fired_at"],
        last_run_id=row["last_run_id"],
        last_error=row["last_error"],
        owner_name=row.get("username", ""),
        owner_is_admin=bool(row.get("is_admin", False)),
    )

"""Worker processes: who runs runs, and when each last said it was alive. The unit of work
owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.records import WorkerRecord
from app.store.models import WorkerRow
from app.store.notifications import WORKERS_CHANGED, notify


class Workers:
    """The registered workers, in one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def register(
        self, worker_id: str, hostname: str, pid: int, at: datetime, *, claims_runs: bool = False
    ) -> None:
        """`claims_runs`: the process claims queued runs (`claiming` counts it)."""
        self._session.add(
            WorkerRow(
                id=worker_id,
                hostname=hostname,
                pid=pid,
                started_at=at,
                last_heartbeat=at,
                claims_runs=claims_runs,
            )
        )
        await self._session.flush()
        if claims_runs:
            await notify(self._session, WORKERS_CHANGED)

    async def heartbeat(self, worker_id: str, at: datetime) -> bool:
        """Record that the worker is alive; False when its row is gone (pruned or never
        made)."""
        result = await self._session.execute(
            update(WorkerRow).where(WorkerRow.id == worker_id).values(last_heartbeat=at)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def prune(self, silent_since: datetime) -> int:
        """Forget the workers not heard from since `silent_since` (they died); how many."""
        result = await self._session.execute(
            delete(WorkerRow).where(WorkerRow.last_heartbeat < silent_since)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def claiming(self, alive_since: datetime) -> int:
        """How many workers that claim queued runs were heard from since `alive_since`."""
        statement = select(func.count()).where(
            WorkerRow.claims_runs, WorkerRow.last_heartbeat >= alive_since
        )
        return int((await self._session.execute(statement)).scalar_one())

    async def remove(self, worker_id: str) -> None:
        await self._session.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))
        await notify(self._session, WORKERS_CHANGED)

    async def all(self) -> Sequence[WorkerRecord]:
        """Every registered worker, the most recently alive first."""
        statement = select(WorkerRow).order_by(WorkerRow.last_heartbeat.desc())
        return [
            WorkerRecord(
                row.id, row.hostname, row.pid, row.started_at, row.last_heartbeat, row.claims_runs
            )
            for row in (await self._session.execute(statement)).scalars()
        ]

"""What the metrics read from the store at scrape time: how much work waits, who is alive.

Each count walks an index in order and stops at `cap` rows (a bounded subquery), so a scrape
costs the same with a million queued runs as with a thousand: queued runs on
(status, created_at), ready tasks on (status, available_at). A count at its cap means "at
least that many".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.runs import RunStatus, TaskStatus
from app.store.models import RUNS, TASKS, WorkerRow


@dataclass(frozen=True)
class Depth:
    queued_runs: int
    ready_tasks: int
    workers_alive: int


def _bounded_count(rows: Select[Any]) -> Select[Any]:
    return select(func.count()).select_from(rows.limit(bindparam("cap")).subquery())


_QUEUED_RUNS = _bounded_count(select(RUNS.c.id).where(RUNS.c.status == RunStatus.QUEUED.value))
# The status written out, not bound: the index of ready tasks is partial, and a planner can
# only take it when the query states its condition (models.TaskRunRow).
_QUEUED_TASK = TASKS.c.status == literal(TaskStatus.QUEUED.value, literal_execute=True)
_READY_TASKS = _bounded_count(
    select(TASKS.c.id).where(_QUEUED_TASK, TASKS.c.available_at <= bindparam("now"))
)
_WORKERS_ALIVE = (
    select(func.count())
    .select_from(WorkerRow)
    .where(WorkerRow.last_heartbeat >= bindparam("since"))
)


class Gauges:
    """The scrape-time counts, in one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def depth(self, now: datetime, alive_since: datetime, cap: int) -> Depth:
        """Queued runs and ready tasks (each counted up to `cap`), and the workers that beat
        since `alive_since`."""
        session = self._session
        queued = await session.scalar(_QUEUED_RUNS, {"cap": cap})
        ready = await session.scalar(_READY_TASKS, {"cap": cap, "now": now})
        alive = await session.scalar(_WORKERS_ALIVE, {"since": alive_since})
        return Depth(int(queued or 0), int(ready or 0), int(alive or 0))

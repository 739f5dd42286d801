"""Pruning finished runs (docs/architecture.md, "Retention"). The unit of work owns each
transaction: one batch per transaction, so no deletion holds its locks for long.

Every statement walks an index: a flow's finished runs are found on (flow_name, created_at),
oldest first, and a batch stops at `limit` rows; the latest versions on (name, version).
A run's tasks, logs and events go with it (their foreign keys cascade: migrations 0001, 0004,
0005). The deletion checks the status again, under the row's lock: a run retried between the
batch's read and its deletion is running again, and stays.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.records import FINISHED_RUN_STATUS_VALUES
from app.store.models import DEFINITIONS, RUNS, TASKS

# Past its first run, a batch takes no more runs than hold this many tasks together (their
# events and logs are about one or two per task): a batch of big runs stays short, and a run
# bigger than this is deleted alone.
MAX_TASKS_PER_BATCH = 50_000

_FINISHED = sorted(FINISHED_RUN_STATUS_VALUES)
_NEWEST_VERSION = (
    select(DEFINITIONS.c.name, func.max(DEFINITIONS.c.version).label("version"))
    .group_by(DEFINITIONS.c.name)
    .subquery()
)
_LATEST_VERSIONS = (
    select(DEFINITIONS.c.name, DEFINITIONS.c.id)
    .join(
        _NEWEST_VERSION,
        (DEFINITIONS.c.name == _NEWEST_VERSION.c.name)
        & (DEFINITIONS.c.version == _NEWEST_VERSION.c.version),
    )
    .order_by(DEFINITIONS.c.name)
)
_DOCUMENTS = select(DEFINITIONS.c.id, DEFINITIONS.c.definition).where(
    DEFINITIONS.c.id.in_(bindparam("ids", expanding=True))
)
_FINISHED_OF_FLOW = (RUNS.c.flow_name == bindparam("flow"), RUNS.c.status.in_(_FINISHED))
# The creation time of the flow's `skip + 1`-th newest finished run.
_NTH_NEWEST = (
    select(RUNS.c.created_at)
    .where(*_FINISHED_OF_FLOW)
    .order_by(RUNS.c.created_at.desc())
    .limit(1)
    .offset(bindparam("skip"))
)
_OLDEST_BEFORE = (
    select(RUNS.c.id)
    .where(*_FINISHED_OF_FLOW, RUNS.c.created_at < bindparam("before"))
    .order_by(RUNS.c.created_at)
    .limit(bindparam("limit"))
)
_TASK_COUNTS = (
    select(TASKS.c.run_id, func.count())
    .where(TASKS.c.run_id.in_(bindparam("ids", expanding=True)))
    .group_by(TASKS.c.run_id)
)
_DELETE = delete(RUNS).where(
    RUNS.c.id.in_(bindparam("ids", expanding=True)), RUNS.c.status.in_(_FINISHED)
)


@dataclass(frozen=True)
class Batch:
    """What one batch deleted, and whether more runs may wait past it."""

    deleted: int
    more: bool


class Pruning:
    """Finding and deleting finished runs, in one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def latest_versions(self) -> list[tuple[str, int]]:
        """(flow name, id of its latest version) of every flow, by name."""
        rows = await self._session.execute(_LATEST_VERSIONS)
        return [(str(name), int(definition_id)) for name, definition_id in rows]

    async def documents(self, definition_ids: Collection[int]) -> dict[int, Any]:
        """The stored definitions (as registered, loaded) of these versions, by id."""
        if not definition_ids:
            return {}
        rows = await self._session.execute(_DOCUMENTS, {"ids": list(definition_ids)})
        return {int(definition_id): document for definition_id, document in rows}

    async def newest_kept(self, flow: str, max_runs: int) -> datetime | None:
        """When the oldest of the flow's newest `max_runs` finished runs was created: the runs
        created before it are beyond `max_runs`. None when the flow has no more than that."""
        found = await self._session.execute(_NTH_NEWEST, {"flow": flow, "skip": max_runs - 1})
        return found.scalar_one_or_none()

    async def delete_batch(
        self, flow: str, before: datetime, limit: int, max_tasks: int = MAX_TASKS_PER_BATCH
    ) -> Batch:
        """Delete up to `limit` of the flow's finished runs created before `before`, oldest
        first, with their tasks, logs and events (past the first run, no more than hold
        `max_tasks` tasks together)."""
        parameters = {"flow": flow, "before": before, "limit": limit}
        found = list((await self._session.execute(_OLDEST_BEFORE, parameters)).scalars())
        ids = await self._within(found, max_tasks)
        if not ids:
            return Batch(0, more=False)
        deleted = await self._session.execute(_DELETE, {"ids": ids})
        more = len(found) == limit or len(ids) < len(found)
        return Batch(int(deleted.rowcount), more)  # type: ignore[attr-defined]

    async def _within(self, run_ids: list[str], max_tasks: int) -> list[str]:
        """The longest run of `run_ids` from the first whose tasks stay within `max_tasks`
        (the first one whatever its size)."""
        if len(run_ids) < 2:
            return run_ids
        rows = await self._session.execute(_TASK_COUNTS, {"ids": run_ids})
        counts = {str(run_id): int(count) for run_id, count in rows}
        taken, tasks = run_ids[:1], counts.get(run_ids[0], 0)
        for run_id in run_ids[1:]:
            tasks += counts.get(run_id, 0)
            if tasks > max_tasks:
                break
            taken.append(run_id)
        return taken

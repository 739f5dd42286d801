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
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.records import FINISHED_RUN_STATUS_VALUES
from app.store.models import DEFINITIONS, RUNS

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
_DELETE = delete(RUNS).where(
    RUNS.c.id.in_(bindparam("ids", expanding=True)), RUNS.c.status.in_(_FINISHED)
)


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

    async def delete_batch(self, flow: str, before: datetime, limit: int) -> int:
        """Delete up to `limit` of the flow's finished runs created before `before`, oldest
        first, with their tasks, logs and events; how many were deleted."""
        parameters = {"flow": flow, "before": before, "limit": limit}
        ids = list((await self._session.execute(_OLDEST_BEFORE, parameters)).scalars())
        if not ids:
            return 0
        deleted = await self._session.execute(_DELETE, {"ids": ids})
        return int(deleted.rowcount)  # type: ignore[attr-defined]

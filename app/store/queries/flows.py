"""Flows as things users own: the `flows` row of each name (owner, visibility, description)
and its shares. Their versions are in `versions.py`. The unit of work owns the transaction.

`visible_to` is the one SQL rule of who may see a flow, so that lists are filtered by the
database (DESIGN.md section 7), never loaded and then filtered.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.access import FlowAccess, Permission
from app.domain.clock import utcnow
from app.domain.records import FlowRef, ShareRecord
from app.domain.runs import ACTIVE_RUN_STATUSES
from app.store.models import FLOWS, RUNS, SHARES, USERS, FlowRow, FlowShareRow
from app.store.queries import runs


def visible_to(user_id: str) -> ColumnElement[bool]:
    """The flows a user who is not acting as an admin may see: its own, the public ones and
    those shared with it (with any permission)."""
    shared = exists().where(SHARES.c.flow_id == FLOWS.c.id, SHARES.c.user_id == user_id)
    return or_(FLOWS.c.owner_id == user_id, FLOWS.c.is_public, shared)


class Flows:
    """The flows and their shares, in one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, name: str, owner_id: str, description: str, at: datetime) -> FlowRef:
        """A new flow; the unit of work raises DuplicateError when another was created
        under that name meanwhile."""
        row = FlowRow(
            name=name,
            owner_id=owner_id,
            is_public=False,
            description=description,
            created_at=at,
            updated_at=at,
        )
        self._session.add(row)
        await self._session.flush()
        return FlowRef(row.id, row.name, row.owner_id)

    async def lock(self, name: str) -> FlowRef | None:
        """The flow, locked until the transaction ends: its versions are numbered one at a
        time."""
        statement = _LOCK.with_for_update()
        found = (await self._session.execute(statement, {"name": name})).one_or_none()
        return FlowRef(found.id, found.name, found.owner_id) if found is not None else None

    async def id_of(self, name: str) -> int | None:
        statement = select(FLOWS.c.id).where(FLOWS.c.name == name)
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def access(self, name: str, user_id: str) -> FlowAccess | None:
        """What decides the user's permission on the flow; None when there is no such flow."""
        found = (
            await self._session.execute(_ACCESS, {"name": name, "user": user_id})
        ).one_or_none()
        if found is None:
            return None
        shared = Permission.of(found.permission) if found.permission is not None else None
        return FlowAccess(found.id, found.owner_id, bool(found.is_public), shared)

    async def count_owned(self, user_id: str) -> int:
        statement = select(func.count()).where(FLOWS.c.owner_id == user_id)
        return int((await self._session.execute(statement)).scalar_one())

    async def owned_names(self, user_id: str, limit: int) -> list[str]:
        statement = (
            select(FLOWS.c.name)
            .where(FLOWS.c.owner_id == user_id)
            .order_by(FLOWS.c.name)
            .limit(limit)
        )
        return list((await self._session.execute(statement)).scalars())

    async def change(
        self,
        flow_id: int,
        at: datetime,
        *,
        public: bool | None = None,
        description: str | None = None,
        owner_id: str | None = None,
    ) -> None:
        """Set the flow's visibility, description or owner (None leaves one as it is)."""
        values: dict[str, Any] = {"updated_at": at}
        if public is not None:
            values["is_public"] = public
        if description is not None:
            values["description"] = description
        if owner_id is not None:
            values["owner_id"] = owner_id
        await self._session.execute(update(FlowRow).where(FlowRow.id == flow_id).values(values))

    async def delete(self, name: str) -> bool:
        """Delete the flow; its versions, runs, tasks and shares go with it. Parents (of other
        flows) waiting for one of its runs wake: their step finds its child gone, and fails."""
        active = [status.value for status in ACTIVE_RUN_STATUSES]
        parents = (
            select(RUNS.c.parent_run_id)
            .where(
                RUNS.c.flow_name == name,
                RUNS.c.parent_run_id.is_not(None),
                RUNS.c.status.in_(active),
            )
            .distinct()
        )
        waiting = [parent for (parent,) in await self._session.execute(parents)]
        result = await self._session.execute(delete(FlowRow).where(FlowRow.name == name))
        for parent in waiting:
            await runs.wake_parent(self._session, parent, utcnow())
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def shares(self, flow_id: int) -> Sequence[ShareRecord]:
        statement = (
            select(USERS.c.username, SHARES.c.permission, SHARES.c.created_at)
            .join(USERS, USERS.c.id == SHARES.c.user_id)
            .where(SHARES.c.flow_id == flow_id)
            .order_by(USERS.c.username)
        )
        return [ShareRecord(*row) for row in await self._session.execute(statement)]

    async def share(self, flow_id: int, user_id: str, permission: Permission, at: datetime) -> bool:
        """Share the flow with the user, or change the permission it has; True when new."""
        statement = select(FlowShareRow).where(
            FlowShareRow.flow_id == flow_id, FlowShareRow.user_id == user_id
        )
        row = (await self._session.execute(statement.with_for_update())).scalar_one_or_none()
        if row is not None:
            row.permission = permission.label
            await self._session.flush()
            return False
        self._session.add(
            FlowShareRow(
                flow_id=flow_id, user_id=user_id, permission=permission.label, created_at=at
            )
        )
        await self._session.flush()
        return True

    async def unshare(self, flow_id: int, user_id: str) -> bool:
        result = await self._session.execute(
            delete(FlowShareRow).where(
                FlowShareRow.flow_id == flow_id, FlowShareRow.user_id == user_id
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def unshare_all_with(self, user_id: str) -> None:
        await self._session.execute(delete(FlowShareRow).where(FlowShareRow.user_id == user_id))


_LOCK = select(FLOWS.c.id, FLOWS.c.name, FLOWS.c.owner_id).where(FLOWS.c.name == bindparam("name"))
# Built once: every request that touches a flow may need it.
_ACCESS = (
    select(FLOWS.c.id, FLOWS.c.owner_id, FLOWS.c.is_public, SHARES.c.permission)
    .select_from(
        FLOWS.outerjoin(
            SHARES, (SHARES.c.flow_id == FLOWS.c.id) & (SHARES.c.user_id == bindparam("user"))
        )
    )
    .where(FLOWS.c.name == bindparam("name"))
)

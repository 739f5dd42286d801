"""The audit log: every change to users, keys, shares and flows' ownership, appended in the
transaction that makes the change. The unit of work owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.records import AuditEntry
from app.store.models import AuditRow


class AuditLog:
    """The audit log, in one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        at: datetime,
        details: dict[str, Any] | None = None,
    ) -> None:
        self._session.add(
            AuditRow(at=at, actor=actor, action=action, target=target, details=details)
        )
        await self._session.flush()

    async def page(self, *, limit: int, before_id: int | None) -> list[AuditEntry]:
        """Entries newest first; `before_id` is the id of the last entry seen."""
        statement = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if before_id is not None:
            statement = statement.where(AuditRow.id < before_id)
        return [
            AuditEntry(row.id, row.at, row.actor, row.action, row.target, row.details)
            for row in (await self._session.execute(statement)).scalars()
        ]

"""Users and their settings. The unit of work owns the transaction.

A deleted user keeps its row (`deleted_at` set): its name is never given to someone else, and
the flows, versions and runs it made still say who made them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.records import UserRecord
from app.store.models import UserRow, UserSettingsRow


class Users:
    """The users and their settings, in one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        *,
        username: str,
        email: str | None,
        password_hash: str | None,
        is_admin: bool,
        at: datetime,
    ) -> UserRecord:
        """A new user; the unit of work raises DuplicateError when the name (or the email)
        is taken."""
        row = UserRow(
            id=str(uuid.uuid4()),
            username=username,
            email=email,
            password_hash=password_hash,
            is_admin=is_admin,
            created_at=at,
        )
        self._session.add(row)
        await self._session.flush()
        return to_record(row)

    async def find(self, username: str) -> UserRecord | None:
        """The user of that name, unless deleted."""
        statement = select(UserRow).where(
            UserRow.username == username, UserRow.deleted_at.is_(None)
        )
        row = (await self._session.execute(statement)).scalar_one_or_none()
        return to_record(row) if row is not None else None

    async def name_taken(self, username: str) -> bool:
        """Whether a user, present or deleted, ever had the name."""
        statement = select(UserRow.id).where(UserRow.username == username)
        return (await self._session.execute(statement)).first() is not None

    async def active(self) -> Sequence[UserRecord]:
        statement = select(UserRow).where(UserRow.deleted_at.is_(None)).order_by(UserRow.username)
        return [to_record(row) for row in (await self._session.execute(statement)).scalars()]

    async def mark_deleted(self, user_id: str, at: datetime) -> None:
        await self._session.execute(
            update(UserRow).where(UserRow.id == user_id).values(deleted_at=at, password_hash=None)
        )

    async def set_password(self, user_id: str, password_hash: str | None) -> None:
        await self._session.execute(
            update(UserRow).where(UserRow.id == user_id).values(password_hash=password_hash)
        )

    async def settings_of(self, user_id: str) -> Any:
        """The user's settings document; {} before any was saved."""
        row = await self._session.get(UserSettingsRow, user_id)
        return row.settings if row is not None else {}

    async def save_settings(self, user_id: str, settings: Any, at: datetime) -> None:
        row = await self._session.get(UserSettingsRow, user_id, with_for_update=True)
        if row is None:
            self._session.add(
                UserSettingsRow(user_id=user_id, settings=settings, created_at=at, updated_at=at)
            )
        else:
            row.settings = settings
            row.updated_at = at
        await self._session.flush()


def to_record(row: UserRow) -> UserRecord:
    return UserRecord(
        id=row.id,
        username=row.username,
        email=row.email,
        is_admin=row.is_admin,
        created_at=row.created_at,
        password_hash=row.password_hash,
    )

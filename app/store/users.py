"""Users and their settings. The caller owns the transaction.

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


async def add(
    session: AsyncSession,
    *,
    username: str,
    email: str | None,
    password_hash: str | None,
    is_admin: bool,
    at: datetime,
) -> UserRecord:
    """A new user; IntegrityError when the name (or the email) is taken."""
    row = UserRow(
        id=str(uuid.uuid4()),
        username=username,
        email=email,
        password_hash=password_hash,
        is_admin=is_admin,
        created_at=at,
    )
    session.add(row)
    await session.flush()
    return to_record(row)


async def find(session: AsyncSession, username: str) -> UserRecord | None:
    """The user of that name, unless deleted."""
    statement = select(UserRow).where(UserRow.username == username, UserRow.deleted_at.is_(None))
    row = (await session.execute(statement)).scalar_one_or_none()
    return to_record(row) if row is not None else None


async def name_taken(session: AsyncSession, username: str) -> bool:
    """Whether a user, present or deleted, ever had the name."""
    statement = select(UserRow.id).where(UserRow.username == username)
    return (await session.execute(statement)).first() is not None


async def active(session: AsyncSession) -> Sequence[UserRecord]:
    statement = select(UserRow).where(UserRow.deleted_at.is_(None)).order_by(UserRow.username)
    return [to_record(row) for row in (await session.execute(statement)).scalars()]


async def mark_deleted(session: AsyncSession, user_id: str, at: datetime) -> None:
    await session.execute(
        update(UserRow).where(UserRow.id == user_id).values(deleted_at=at, password_hash=None)
    )


async def set_password(session: AsyncSession, user_id: str, password_hash: str | None) -> None:
    await session.execute(
        update(UserRow).where(UserRow.id == user_id).values(password_hash=password_hash)
    )


async def settings_of(session: AsyncSession, user_id: str) -> Any:
    """The user's settings document; {} before any was saved."""
    row = await session.get(UserSettingsRow, user_id)
    return row.settings if row is not None else {}


async def save_settings(session: AsyncSession, user_id: str, settings: Any, at: datetime) -> None:
    row = await session.get(UserSettingsRow, user_id, with_for_update=True)
    if row is None:
        session.add(
            UserSettingsRow(user_id=user_id, settings=settings, created_at=at, updated_at=at)
        )
    else:
        row.settings = settings
        row.updated_at = at
    await session.flush()


def to_record(row: UserRow) -> UserRecord:
    return UserRecord(
        id=row.id,
        username=row.username,
        email=row.email,
        is_admin=row.is_admin,
        created_at=row.created_at,
        password_hash=row.password_hash,
    )

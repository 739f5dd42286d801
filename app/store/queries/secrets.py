"""Random values every process of the service shares, made by the migrations."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.models import SecretRow

CURSOR_KEY = "cursor_key"  # signs list cursors


async def get(session: AsyncSession, name: str) -> str | None:
    statement = select(SecretRow.value).where(SecretRow.name == name)
    return (await session.execute(statement)).scalar_one_or_none()

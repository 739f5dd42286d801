"""Rows the store tests build on."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.store.database import session_factory
from app.store.models import FlowDefinitionRow, FlowRow, UserRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def owner_of(name: str) -> str:
    """The id of the user `add_owner_and_flow` makes the owner of flow `name`."""
    return "u-" + hashlib.sha256(name.encode()).hexdigest()[:30]


async def add_owner_and_flow(session: AsyncSession, name: str) -> str:
    """A user and a flow `name` it owns, which a version of the flow needs; the user's id."""
    owner_id = owner_of(name)
    session.add(UserRow(id=owner_id, username=owner_id, is_admin=False, created_at=T0))
    await session.flush()
    session.add(
        FlowRow(
            name=name,
            owner_id=owner_id,
            is_public=False,
            description="",
            created_at=T0,
            updated_at=T0,
        )
    )
    await session.flush()
    return owner_id


async def add_definition(engine: AsyncEngine, name: str = "f", version: int = 1) -> int:
    """A stored version of flow `name` (its text is not needed); its id."""
    async with session_factory(engine).begin() as session:
        if version == 1:
            await add_owner_and_flow(session, name)
        definition = FlowDefinitionRow(
            name=name,
            version=version,
            definition={},
            source="",
            format="yaml",
            checksum="",
            description="",
            created_at=T0,
        )
        session.add(definition)
        await session.flush()
        return definition.id

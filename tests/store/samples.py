"""Rows the store tests build on."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.database import session_factory
from app.store.models import FlowDefinitionRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def add_definition(engine: AsyncEngine, name: str = "f", version: int = 1) -> int:
    """A stored version of flow `name` (its text is not needed); its id."""
    async with session_factory(engine).begin() as session:
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

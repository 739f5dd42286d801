"""The run stores the contract suite runs against: in memory, SQLite, PostgreSQL, MariaDB.

A `Stores` is one shared store (one database, or one `MemoryRuns`) and the view of it of each
worker (`of(owner)`), each implementing both run ports: the engine's `RunStore` and the
services' `RunRepository`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.clock import utcnow
from app.domain.concurrency import RunConcurrency
from app.domain.records import NewRunRow
from app.domain.runs import RunStatus
from app.engine.store import RunStore
from app.services.ports import RunRepository
from app.store.database import session_factory
from app.store.memory import MemoryRuns, MemoryRunStore
from app.store.models import FlowDefinitionRow, FlowRow, FlowShareRow, UserRow
from app.store.run_store import SqlRunStore
from tests.databases import STORE_DATABASES, fresh_store_database, migrate_to_head, store_engine

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = 30.0


class RunPorts(RunStore, RunRepository, Protocol):
    """Both ports, as one store implements them."""


class Stores:
    """One shared store; what a test sets up in it (users, flows and their versions)."""

    async def user(self, user_id: str) -> str:
        raise NotImplementedError

    async def flow(
        self,
        name: str,
        owner: str,
        *,
        public: bool = False,
        shared_with: str | None = None,
        source: str = "",
    ) -> int:
        """A flow `owner` owns, with its first version (of `source`); the version's id."""
        raise NotImplementedError

    async def version(self, name: str, source: str = "") -> int:
        """A new version of the flow; its id."""
        raise NotImplementedError

    def of(self, owner: str) -> RunPorts:
        raise NotImplementedError


class MemoryStores(Stores):
    def __init__(self) -> None:
        self.runs = MemoryRuns()

    async def user(self, user_id: str) -> str:
        self.runs.usernames[user_id] = f"name-{user_id}"
        return user_id

    async def flow(
        self,
        name: str,
        owner: str,
        *,
        public: bool = False,
        shared_with: str | None = None,
        source: str = "",
    ) -> int:
        viewers = {owner, "*"} if public else {owner}
        if shared_with is not None:
            viewers.add(shared_with)
        self.runs.visible[name] = viewers
        return self.runs.add_version(name, source).id

    async def version(self, name: str, source: str = "") -> int:
        return self.runs.add_version(name, source).id

    def of(self, owner: str) -> RunPorts:
        return MemoryRunStore(self.runs, owner)


class SqlStores(Stores):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)
        self._opened: dict[str, SqlRunStore] = {}

    async def user(self, user_id: str) -> str:
        async with self.sessions.begin() as session:
            session.add(UserRow(id=user_id, username=f"name-{user_id}", created_at=T0))
        return user_id

    async def flow(
        self,
        name: str,
        owner: str,
        *,
        public: bool = False,
        shared_with: str | None = None,
        source: str = "",
    ) -> int:
        async with self.sessions.begin() as session:
            flow = FlowRow(
                name=name,
                owner_id=owner,
                is_public=public,
                description="",
                created_at=T0,
                updated_at=T0,
            )
            session.add(flow)
            await session.flush()
            if shared_with is not None:
                session.add(
                    FlowShareRow(
                        flow_id=flow.id, user_id=shared_with, permission="view", created_at=T0
                    )
                )
        return await self.version(name, source)

    async def version(self, name: str, source: str = "") -> int:
        async with self.sessions.begin() as session:
            latest = await _latest_version(session, name)
            definition = FlowDefinitionRow(
                name=name,
                version=latest + 1,
                definition={},
                source=source,
                format="yaml",
                checksum="",
                description="",
                created_at=T0,
            )
            session.add(definition)
            await session.flush()
            return definition.id

    def of(self, owner: str) -> RunPorts:
        """The store of the worker `owner`: one per worker, as each process has one (a store
        may commit some writes later than it answers: `RunStore.committed`)."""
        if owner not in self._opened:
            self._opened[owner] = SqlRunStore(self.engine, owner)
        return self._opened[owner]

    async def aclose(self) -> None:
        for store in self._opened.values():
            await store.aclose()


async def _latest_version(session: Any, name: str) -> int:
    found = await session.execute(
        select(func.max(FlowDefinitionRow.version)).where(FlowDefinitionRow.name == name)
    )
    return int(found.scalar_one() or 0)


@pytest.fixture(params=["memory", *STORE_DATABASES])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    if request.param == "memory":
        yield MemoryStores()
        return
    async with sql_stores(request.param, tmp_path) as opened:
        yield opened


@asynccontextmanager
async def sql_stores(kind: str, tmp_path: Path) -> AsyncIterator[SqlStores]:
    """The stores of a fresh, migrated database of `kind` (one of STORE_DATABASES)."""
    async with fresh_store_database(kind, tmp_path) as url:
        await migrate_to_head(url)
        async with store_engine(url) as engine:
            opened = SqlStores(engine)
            try:
                yield opened
            finally:
                await opened.aclose()


def new_run(
    run_id: str,
    definition_id: int,
    *,
    flow: str = "f",
    status: RunStatus = RunStatus.QUEUED,
    steps: tuple[str, ...] = ("a", "b"),
    key: str | None = None,
    created_at: datetime = T0,
    created_by: str | None = None,
    owner: str | None = None,
    latest_only: bool = False,
    inputs: Any = None,
    priority: int = 0,
    concurrency: RunConcurrency | None = None,
) -> NewRunRow:
    """A run to create: queued, or running under `owner`'s lease from now."""
    expires = utcnow() + timedelta(seconds=LEASE) if owner else None
    return NewRunRow(
        run_id=run_id,
        flow_name=flow,
        definition_id=definition_id,
        status=RunStatus.RUNNING if owner else status,
        inputs={"n": 1} if inputs is None else inputs,
        step_ids=list(steps),
        idempotency_key=key,
        created_at=created_at,
        lease_owner=owner,
        lease_expires_at=expires,
        latest_only=latest_only,
        created_by=created_by,
        priority=priority,
        concurrency=concurrency,
    )

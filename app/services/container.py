"""Wiring: every long-lived object of a service process, built once and closed once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.connections.manager import ConnectionManager
from app.engine.environment import allowed_environment
from app.engine.executor import FlowExecutor, Format
from app.services.flow_manager import FlowManagerService
from app.services.flows import FlowService
from app.services.runs import RunService
from app.services.workers import WorkerService
from app.settings import Settings
from app.store import migrations
from app.store.database import create_engine, session_factory
from app.store.pg_run_store import PgRunStore
from app.store.run_store import SqlRunStore
from app.tasks.loading import load_task_modules


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    run_store: SqlRunStore
    sessions: async_sessionmaker[AsyncSession]
    connections: ConnectionManager
    executor: FlowExecutor
    flows: FlowService
    runs: RunService
    flow_manager: FlowManagerService
    workers: WorkerService

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        registry = load_task_modules(settings.task_modules)
        engine = create_engine(settings)
        if settings.should_migrate_on_start:
            await migrations.upgrade(engine)
        sessions = session_factory(engine)
        connections = ConnectionManager()
        run_store = run_store_for(engine)
        executor = FlowExecutor(
            registry,
            store=run_store,
            connections=connections,
            env=allowed_environment(settings.flow_env_allowlist, settings.flow_env_file),
        )
        flows = FlowService(sessions, executor)
        runs = RunService(sessions, executor)
        return cls(
            settings=settings,
            engine=engine,
            run_store=run_store,
            sessions=sessions,
            connections=connections,
            executor=executor,
            flows=flows,
            runs=runs,
            flow_manager=FlowManagerService(flows, runs, settings.max_wait_seconds),
            workers=WorkerService(sessions),
        )

    async def register_flow_files(self) -> None:
        """Register the FLOW_FILES definitions, as the FlowLang server serves its flow.yaml."""
        for name in self.settings.flow_files:
            path = Path(name)
            format: Format = "json" if path.suffix.lower() == ".json" else "yaml"
            source = await asyncio.to_thread(path.read_text, encoding="utf-8")
            await self.flows.register(source, format)

    async def store_reachable(self) -> bool:
        """Whether the store answers a trivial query within 5 seconds (GET /ready)."""
        try:
            async with asyncio.timeout(5), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError):
            return False
        return True

    async def close(self, grace: float = 10) -> None:
        await self.runs.shutdown(grace)
        await self.run_store.aclose()
        await self.connections.aclose()
        await self.engine.dispose()


def run_store_for(engine: AsyncEngine) -> SqlRunStore:
    """PostgreSQL gets its one-statement hot path; the other stores the portable one."""
    return PgRunStore(engine) if engine.dialect.name == "postgresql" else SqlRunStore(engine)

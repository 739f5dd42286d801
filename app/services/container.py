"""Wiring: every long-lived object of a service process, built once and closed once.

`open` builds them; `start` makes the process a member of the cluster (its heartbeat, which
renews its runs' leases, and on PostgreSQL its notification listener); `close` drains the runs
in flight and closes everything in reverse.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.connections.manager import ConnectionManager
from app.engine.environment import allowed_environment
from app.engine.executor import FlowExecutor, Format
from app.errors import SingleProcessStoreError
from app.services.flow_manager import FlowManagerService
from app.services.flows import FlowService
from app.services.heartbeat import Heartbeat, new_worker_id
from app.services.runs import RunService
from app.services.workers import WorkerService
from app.settings import Settings
from app.store import migrations, notifications, workers
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
    heartbeat: Heartbeat
    listener: notifications.Listener | None

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        registry = load_task_modules(settings.task_modules)
        engine = create_engine(settings)
        if settings.should_migrate_on_start:
            await migrations.upgrade(engine)
        sessions = session_factory(engine)
        connections = ConnectionManager()
        worker_id = new_worker_id()
        run_store = run_store_for(engine, worker_id)
        executor = FlowExecutor(
            registry,
            store=run_store,
            connections=connections,
            env=allowed_environment(settings.flow_env_allowlist, settings.flow_env_file),
            max_steps=settings.max_steps,
        )
        flows = FlowService(sessions, executor)
        runs = RunService(
            sessions, executor, run_store, owner=worker_id, lease_seconds=settings.lease_seconds
        )
        listener = None
        if engine.dialect.name == "postgresql":
            listener = notifications.Listener(
                engine.url,
                {
                    notifications.RUNS_QUEUED: lambda _: runs.work_available.set(),
                    notifications.RUN_CANCELLED: runs.stop_local,
                },
            )
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
            heartbeat=Heartbeat(
                sessions, settings.heartbeat_seconds, worker_id, on_beat=runs.renew_leases
            ),
            listener=listener,
        )

    async def start(self) -> None:
        """Join the cluster: register and beat, listen for notifications, and on a
        single-process store resume the runs this process left running when it stopped."""
        if self.settings.is_sqlite:
            await self._refuse_a_second_process()
        await self.heartbeat.start()
        if self.listener is not None:
            await self.listener.start()
        if self.settings.is_sqlite:
            await self.runs.resume_interrupted()

    async def _refuse_a_second_process(self) -> None:
        """SQLite is single-process: another live process already runs this store's runs."""
        async with self.sessions() as session:
            registered = await workers.all_workers(session)
        for worker in registered:
            if worker.hostname == self.heartbeat.hostname and _process_alive(worker.pid):
                raise SingleProcessStoreError(
                    f"process {worker.pid} already runs the runs of this SQLite store "
                    f"({self.settings.database_url}); SQLite is single-process: use "
                    "PostgreSQL to run several API or worker processes"
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
        if self.listener is not None:
            await self.listener.stop()
        await self.runs.shutdown(grace)
        await self.heartbeat.stop()
        await self.run_store.aclose()
        await self.connections.aclose()
        await self.engine.dispose()


def run_store_for(engine: AsyncEngine, owner: str) -> SqlRunStore:
    """PostgreSQL gets its one-statement hot path; the other stores the portable one."""
    if engine.dialect.name == "postgresql":
        return PgRunStore(engine, owner)
    return SqlRunStore(engine, owner)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True

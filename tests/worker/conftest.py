"""Fixtures of the real-process tests: a fresh, migrated PostgreSQL database per test, worker
processes (`python -m app worker`) on it, and the test's own service container, which queues
runs and reads them but executes none.

Every worker writes its log to a file of the test's tmp_path; a failing test's report shows
them all. Whatever happens, the workers a test started are killed at teardown.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.services.container import Services
from app.settings import Settings
from tests.databases import migrate_to_head, postgres_database, postgres_database_url
from tests.polling import until
from tests.worker import process_tasks

REPO_ROOT = Path(__file__).resolve().parents[2]
TASK_MODULE = "tests.worker.process_tasks"
EXIT_DEADLINE_SECONDS = 10.0
# Four workers must fit in a stock server's 100 connections: their store pools, their listeners
# and the side-effects pools of the tasks.
WORKER_POOL_SIZE = 8
WORKER_MAX_OVERFLOW = 2
CONNECTIONS_PER_WORKER = WORKER_POOL_SIZE + WORKER_MAX_OVERFLOW + 1 + process_tasks.POOL_SIZE

SIDE_EFFECTS_TABLE = """
CREATE TABLE side_effects (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL,
    step text NOT NULL,
    idx integer NOT NULL,
    pid integer NOT NULL,
    event text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
)"""

# Backends of the test's database busy in a statement or a transaction, but the asking one's.
BUSY_BACKENDS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'
"""


@dataclass(frozen=True)
class Event:
    """A row of side_effects: what a task did, in which process."""

    run_id: str
    step: str
    idx: int
    pid: int
    event: str


@dataclass
class Worker:
    """A `python -m app worker` process and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def logged(self, text: str, deadline: float = EXIT_DEADLINE_SECONDS) -> None:
        """Wait until the worker's log contains `text`."""
        await until(lambda: text in self.log_text(), deadline, interval=0.05)

    async def exit_code(self, deadline: float = EXIT_DEADLINE_SECONDS) -> int:
        """Wait for the process to exit; its exit code."""
        await until(lambda: not self.running, deadline, interval=0.05)
        code = self.process.returncode
        assert code is not None
        return code

    def kill(self) -> None:
        if self.running:
            self.process.send_signal(signal.SIGCONT)  # a stopped process dies all the same
            self.process.kill()
        self.process.wait(timeout=EXIT_DEADLINE_SECONDS)


@dataclass
class Cluster:
    """The test's database, the workers started on it and the gates their steps wait for."""

    database_url: str  # SQLAlchemy's asyncpg URL, as DATABASE_URL
    dsn: str  # plain asyncpg DSN
    directory: Path
    connection: Any  # asyncpg connection of the test process, for reading the tables
    workers: list[Worker] = field(default_factory=list)

    @property
    def gates(self) -> Path:
        return self.directory / "gates"

    def start_worker(
        self,
        *,
        concurrency: int = 4,
        lease_seconds: float = 2,
        grace_seconds: float = 10,
        settings: dict[str, str] | None = None,
    ) -> Worker:
        """`settings`: more environment, over the test's."""
        name = f"worker-{len(self.workers) + 1}"
        log = self.directory / f"{name}.log"
        env = os.environ | {
            "DATABASE_URL": self.database_url,
            "MIGRATE_ON_START": "false",
            "TASK_MODULES": TASK_MODULE,
            "FLOW_FILES": "",
            "LEASE_SECONDS": str(lease_seconds),
            "POLL_INTERVAL": "0.2",
            "SHUTDOWN_GRACE_SECONDS": str(grace_seconds),
            "POOL_SIZE": str(WORKER_POOL_SIZE),
            "MAX_OVERFLOW": str(WORKER_MAX_OVERFLOW),
            "LOG_LEVEL": "info",
            "SIDE_EFFECTS_DSN": self.dsn,
            "GATE_DIR": str(self.gates),
            "PYTHONUNBUFFERED": "1",
            **(settings or {}),
        }
        command = [sys.executable, "-m", "app", "worker", "--concurrency", str(concurrency)]
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        worker = Worker(name, process, log)
        self.workers.append(worker)
        return worker

    async def free_connections(self) -> int:
        """Connections the server can still open, whoever holds the others."""
        return int(
            await self.connection.fetchval(
                "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity"
            )
        )

    def open_gate(self, name: str, *, pid: int | None = None) -> None:
        """Let the steps waiting for the gate go on: in every process, or only in `pid`."""
        (self.gates / (name if pid is None else f"{name}.{pid}")).touch()

    async def events(self, run_id: str) -> list[Event]:
        rows = await self.connection.fetch(
            "SELECT run_id, step, idx, pid, event FROM side_effects WHERE run_id = $1 ORDER BY id",
            run_id,
        )
        return [Event(**dict(row)) for row in rows]

    async def wait_for_event(
        self,
        run_id: str,
        step: str,
        event: str,
        *,
        pid: int | None = None,
        deadline: float = EXIT_DEADLINE_SECONDS,
    ) -> Event:
        """The first `event` of `step` in the run (by the process `pid`, if given), once it
        happened."""
        found: list[Event] = []

        async def happened() -> bool:
            found[:] = [
                seen
                for seen in await self.events(run_id)
                if (seen.step, seen.event) == (step, event) and pid in (None, seen.pid)
            ]
            return bool(found)

        await until(happened, deadline, interval=0.02)
        return found[0]

    async def freeze(self, worker: Worker, deadline: float = EXIT_DEADLINE_SECONDS) -> None:
        """SIGSTOP the worker outside any statement or transaction of its own.

        A worker stopped inside a transaction would keep its locks (the run's row, while it
        renews its leases) and no other worker could take its runs over until it resumed. Only
        this test uses its database, so the database's backends tell.
        """

        async def idle() -> bool:
            return not await self.connection.fetchval(BUSY_BACKENDS)

        async with asyncio.timeout(deadline):
            while True:
                worker.signal(signal.SIGSTOP)
                await until(lambda: _stopped(worker.pid))
                # Twice: a statement it sent just before stopping may not show yet.
                if await idle() and await idle():
                    return
                worker.signal(signal.SIGCONT)
                await until(idle)

    def logs(self) -> str:
        return "\n".join(
            f"----- {worker.name} (pid {worker.pid}) -----\n{worker.log_text()}"
            for worker in self.workers
        )

    def kill_all(self) -> None:
        for worker in self.workers:
            worker.kill()


CLUSTER = pytest.StashKey[Cluster]()


def _stopped(pid: int) -> bool:
    """Whether the process is stopped (Linux: its state in /proc is T)."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    return stat.rsplit(")", 1)[1].split()[0] == "T"


@pytest.fixture
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with postgres_database("fm_workers") as name:
        database_url = postgres_database_url(name, scheme="postgresql+asyncpg")
        await migrate_to_head(database_url)
        dsn = postgres_database_url(name)
        connection = await asyncpg.connect(dsn)
        await connection.execute(SIDE_EFFECTS_TABLE)
        (tmp_path / "gates").mkdir()
        cluster = Cluster(database_url, dsn, tmp_path, connection)
        request.node.stash[CLUSTER] = cluster
        try:
            yield cluster
        finally:
            cluster.kill_all()
            await connection.close()


@pytest.fixture
async def services(cluster: Cluster) -> AsyncIterator[Services]:
    """The test process's services: it queues runs (`runs.start`) and reads them, and never
    executes one (no `start()`: no worker, no heartbeat)."""
    settings = Settings(
        _env_file=None,
        database_url=cluster.database_url,
        migrate_on_start=False,
        task_modules=[TASK_MODULE],
        embedded_worker=False,
        pool_size=5,
        max_overflow=0,
    )
    opened = await Services.open(settings)
    yield opened
    await opened.close(grace=0)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test's report shows its workers' logs."""
    report = yield
    cluster = item.stash.get(CLUSTER, None)
    if report.failed and cluster is not None:
        report.sections.append(("worker logs", cluster.logs()))
    return report

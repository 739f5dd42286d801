"""The embedded worker: runs queued runs in the API's own process.

It wakes when a run is queued (or a slot frees up) and polls every `poll_interval` seconds in
case a run was queued by another route to the same database. At most `concurrency` runs execute
at once in the process (including `/execute` runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.engine.store import RunStatus
from app.services.runs import RunService
from app.store import runs
from app.worker.heartbeat import Heartbeat

logger = logging.getLogger(__name__)


class EmbeddedWorker:
    def __init__(
        self,
        service: RunService,
        sessions: async_sessionmaker[AsyncSession],
        *,
        concurrency: int,
        poll_interval: float,
        heartbeat_interval: float = 10,
    ) -> None:
        self.service = service
        self.sessions = sessions
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.heartbeat = Heartbeat(sessions, heartbeat_interval)
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register in `workers`, start the heartbeat and the claim loop."""
        await self.heartbeat.start()
        self._loop = asyncio.create_task(self._run_forever(), name="embedded-worker")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
            await self.heartbeat.stop()

    async def _run_forever(self) -> None:
        while True:
            self.service.work_available.clear()
            try:
                await self.claim()
            except Exception:  # a database hiccup must not kill the loop
                logger.exception("claiming queued runs failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.service.work_available.wait(), self.poll_interval)

    async def claim(self) -> int:
        """Start as many queued runs as there are free slots; how many started."""
        free = self.concurrency - len(self.service.in_flight)
        if free <= 0:
            self.service.worker_saturated = True
            return 0
        started = 0
        async with self.sessions.begin() as session:
            queued = await runs.ids_with_status(session, RunStatus.QUEUED, limit=free)
        for run_id in queued:
            async with self.sessions.begin() as session:
                claimed = await runs.change_status(
                    session, run_id, RunStatus.RUNNING, only_from=[RunStatus.QUEUED]
                )
            if claimed:
                self.service.launch(run_id)
                started += 1
        # Every slot taken: more may be queued, so a finishing run should wake the worker.
        self.service.worker_saturated = started >= free
        return started

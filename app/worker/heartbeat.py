"""A worker's registration in `workers` and its heartbeat, for `GET /workers` and for others
to tell live workers from dead ones (leases build on it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.engine.clock import utcnow
from app.store import workers

logger = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float) -> None:
        self.sessions = sessions
        self.interval = interval
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        # host:pid:random, unique even when the operating system reuses a pid.
        self.worker_id = f"{self.hostname}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._register()
        self._loop = asyncio.create_task(self._beat_forever(), name="worker-heartbeat")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        async with self.sessions.begin() as session:
            await workers.remove(session, self.worker_id)

    async def _register(self) -> None:
        async with self.sessions.begin() as session:
            await workers.register(session, self.worker_id, self.hostname, self.pid, utcnow())

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                async with self.sessions.begin() as session:
                    alive = await workers.heartbeat(session, self.worker_id, utcnow())
                if not alive:  # someone pruned us: say we are here again
                    await self._register()
            except Exception:  # a database hiccup must not stop the beat
                logger.exception("worker heartbeat failed")

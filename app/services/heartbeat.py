"""A service process's heartbeat: its row in `workers`, and the leases of the runs it runs.

Every process that executes runs (an API process, embedded worker or not, and a standalone
worker) registers as `host:pid:random` and beats every `interval` seconds, a third of a lease:
each beat says it is alive (`GET /workers`), forgets workers long silent, and renews its runs'
leases, stopping the runs it lost (cancelled or taken over elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from app.background import stop_task
from app.domain.clock import utcnow
from app.store.unit_of_work import Store

logger = logging.getLogger(__name__)

# A worker silent for this many beats died (a clean stop removes its row): any worker forgets it.
FORGET_AFTER_BEATS = 30


def new_worker_id() -> str:
    """host:pid:random, unique even when the operating system reuses a pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Heartbeat:
    def __init__(
        self,
        store: Store,
        interval: float,
        worker_id: str,
        on_beat: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.interval = interval
        self.worker_id = worker_id
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.on_beat = on_beat
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register and start beating; a store that is down now is retried on every beat."""
        try:
            await self._register()
        except Exception:
            logger.exception("worker registration failed; retrying on the next beat")
        self._loop = asyncio.create_task(self._beat_forever(), name="worker-heartbeat")

    async def stop(self) -> None:
        if self._loop is not None:
            await stop_task(self._loop)
            self._loop = None
            try:
                async with self.store.write() as tx:
                    await tx.workers.remove(self.worker_id)
            except Exception:  # the row goes stale; GET /workers shows its last heartbeat
                logger.exception("worker deregistration failed")

    async def beat(self) -> None:
        now = utcnow()
        async with self.store.write() as tx:
            alive = await tx.workers.heartbeat(self.worker_id, now)
            await tx.workers.prune(now - timedelta(seconds=self.interval * FORGET_AFTER_BEATS))
        if not alive:  # someone pruned us: say we are here again
            await self._register()
        if self.on_beat is not None:
            await self.on_beat()

    async def _register(self) -> None:
        async with self.store.write() as tx:
            await tx.workers.register(self.worker_id, self.hostname, self.pid, utcnow())

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except Exception:  # a database hiccup must not stop the beat
                logger.exception("worker heartbeat failed")

"""A service process's heartbeat: its row in `workers`, and the leases of the runs it runs.

Every process that executes runs (an API process, embedded worker or not, and a standalone
worker) registers as `host:pid:random` and beats every `interval` seconds, a third of a lease:
each beat says it is alive (`GET /workers`), forgets workers long silent, counts the live
workers that claim queued runs (`claiming_workers`: the claim loop spaces its claims by it), and
renews its runs' leases, stopping the runs it lost (cancelled or taken over elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from app.background import stop_task
from app.domain.clock import utcnow
from app.store.queries.workers import Workers
from app.store.unit_of_work import Store

logger = logging.getLogger(__name__)

# A worker silent for this many beats died (a clean stop removes its row): any worker forgets it.
FORGET_AFTER_BEATS = 30
# A worker that missed no more than one beat is counted among the live claiming workers.
ALIVE_WITHIN_BEATS = 2


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
        *,
        claims_runs: bool = False,
    ) -> None:
        """`claims_runs`: this process claims queued runs (it runs a claim loop)."""
        self.store = store
        self.interval = interval
        self.worker_id = worker_id
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.on_beat = on_beat
        self.claims_runs = claims_runs
        # The live workers that claim queued runs, as of the last count (this one, until then).
        self.claiming_workers = 1
        self._loop: asyncio.Task[None] | None = None
        self._recounting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register and start beating; a store that is down now is retried on every beat."""
        try:
            await self._register()
        except Exception:
            logger.exception("worker registration failed; retrying on the next beat")
        self._loop = asyncio.create_task(self._beat_forever(), name="worker-heartbeat")

    async def stop(self) -> None:
        await stop_task(self._recounting)
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
            await self._count_claiming(tx.workers, now)
        if not alive:  # someone pruned us: say we are here again
            await self._register()
        if self.on_beat is not None:
            await self.on_beat()

    async def _register(self) -> None:
        now = utcnow()
        async with self.store.write() as tx:
            await tx.workers.register(
                self.worker_id, self.hostname, self.pid, now, claims_runs=self.claims_runs
            )
            await self._count_claiming(tx.workers, now)

    def recount(self) -> None:
        """Count the live claiming workers again, soon (a worker came or went): the others
        would otherwise learn of it on their next beat only."""
        if self._recounting is None or self._recounting.done():
            self._recounting = asyncio.create_task(self._recount(), name="worker-recount")

    async def _recount(self) -> None:
        try:
            async with self.store.read() as tx:
                await self._count_claiming(tx.workers, utcnow())
        except Exception:  # the next beat counts again
            logger.exception("counting the claiming workers failed")

    async def _count_claiming(self, workers: Workers, now: datetime) -> None:
        alive_since = now - timedelta(seconds=self.interval * ALIVE_WITHIN_BEATS)
        self.claiming_workers = await workers.claiming(alive_since)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except Exception:  # a database hiccup must not stop the beat
                logger.exception("worker heartbeat failed")

"""`python -m app worker`: a process that only runs queued runs, next to the API processes.

It shares the store with the API (PostgreSQL or MariaDB); a run is claimed by one process only
(compare-and-set on its status). SQLite is single-process, so it is refused there.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from app.errors import FlowManagerError
from app.services.container import Services
from app.settings import Settings
from app.worker.embedded import EmbeddedWorker

logger = logging.getLogger(__name__)


class SingleProcessStoreError(FlowManagerError):
    """SQLite is single-process: the API's embedded worker runs its runs; use PostgreSQL to
    run workers in other processes."""


async def run_worker(settings: Settings, *, concurrency: int | None = None) -> None:
    """Run until SIGTERM or SIGINT, then let in-flight runs finish (or re-queue them)."""
    if settings.is_sqlite:
        raise SingleProcessStoreError()
    services = await Services.open(settings)
    worker = EmbeddedWorker(
        services.runs,
        services.sessions,
        concurrency=concurrency or settings.worker_concurrency,
        poll_interval=settings.poll_interval,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await worker.start()
    logger.info("worker started (concurrency %d)", worker.concurrency)
    try:
        await stop.wait()
    finally:
        await worker.stop()
        await services.close(grace=settings.lease_seconds)

"""`python -m app worker`: a process that only runs runs, next to the API processes.

It shares the store with the API (PostgreSQL, or MariaDB) and claims runs through the queue
(`store/queries/queue.py`): any number of workers on any number of machines. SQLite is
single-process, so it is refused there. On SIGTERM (or SIGINT) it stops claiming, gives the
runs in flight `SHUTDOWN_GRACE_SECONDS` to finish and releases the others' leases, so another
worker takes them over at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from app.collector import startup_objects_frozen
from app.errors import SingleProcessStoreError
from app.services.container import Services
from app.settings import Settings
from app.worker.claim_loop import ClaimLoop

logger = logging.getLogger(__name__)


def serve_worker(settings: Settings, *, concurrency: int | None = None) -> None:
    """`run_worker` on uvloop, as uvicorn serves the API, where it is installed (uvicorn's
    `standard` extra, in requirements.txt: not on Windows); else on asyncio's own loop."""
    with asyncio.Runner(loop_factory=_uvloop()) as runner:
        runner.run(run_worker(settings, concurrency=concurrency))


def _uvloop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return None
    return uvloop.new_event_loop


async def run_worker(settings: Settings, *, concurrency: int | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain."""
    if settings.is_sqlite:
        raise SingleProcessStoreError()
    services = await Services.open(settings, serving=False)
    worker = ClaimLoop(
        services.runner,
        concurrency=concurrency or settings.worker_concurrency,
        poll_interval=settings.poll_interval,
        claim_interval=settings.claim_interval,
        claimers=lambda: services.heartbeat.claiming_workers,
    )
    stop = asyncio.Event()
    stop_metrics = None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await services.start()
        if settings.worker_metrics_port is not None:
            port = settings.worker_metrics_port
            stop_metrics = services.metrics.serve_http(settings.host, port)
        await worker.start()
        logger.info(
            "worker %s started (concurrency %d)", services.heartbeat.worker_id, worker.concurrency
        )
        with startup_objects_frozen():
            await stop.wait()
        logger.info("stopping: no more claims; draining the runs in flight")
    finally:
        await worker.stop()
        await services.close(grace=settings.shutdown_grace_seconds)
        if stop_metrics is not None:
            stop_metrics()

"""`create_app()`: the FastAPI application and its lifespan; `app`, the one built from the
environment's settings.

Building an app does no I/O beyond reading the settings (no store connection, no thread): the
lifespan opens the store (migrating it first where `MIGRATE_ON_START` says so), the task
registry and the connection pools, joins the cluster (heartbeat, leases, notifications), starts
the embedded worker, and on shutdown drains the runs in flight and closes it all in reverse.

    uvicorn app.main:app --reload             # or: python -m app serve

Under plain uvicorn the service cannot see uvicorn's `--host`: HOST (127.0.0.1 by default) is
what it believes it listens on, and what decides authentication (AUTH=auto) and the Host names
answered, so give it the same value (`HOST=0.0.0.0 uvicorn app.main:app --host 0.0.0.0`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import register_routes
from app.collector import startup_objects_frozen
from app.services.container import Services
from app.settings import Settings, get_settings
from app.worker.claim_loop import ClaimLoop

DESCRIPTION = """Store flow definitions (YAML or JSON graphs of tasks with conditions), keep every
version, and execute them durably — sequentially or as a DAG, with retries, timeouts, error
handlers and fan-out."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.open(settings)
        app.state.services = services
        worker = ClaimLoop(
            services.runner,
            concurrency=settings.worker_concurrency,
            poll_interval=settings.poll_interval,
            claim_interval=settings.claim_interval,
            claimers=lambda: services.heartbeat.claiming_workers,
        )
        try:
            await services.register_flow_files()
            await services.start()
            await services.start_authentication()
            if settings.embedded_worker:
                await worker.start()
            with startup_objects_frozen():
                yield
        finally:
            await worker.stop()
            await services.close(grace=settings.shutdown_grace_seconds)

    app = FastAPI(
        title="Flow Manager",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Its HTTP spans join ours when tracing is on (OTEL_*); metrics are Prometheus's and
        # logs the standard library's JSON lines, so it need not look for OpenTelemetry
        # providers of either at every request (the logs' is an environment lookup each time).
        telemetry={"metrics": False, "logs": False},
    )
    app.state.settings = settings
    register_routes(app, settings)
    return app


def __getattr__(name: str) -> FastAPI:
    """`app`: the app of the environment's settings, for `uvicorn app.main:app` (the Flow
    Manager seed's own start command), built once on first use.

    Built on first use rather than at import because `python -m app serve` and the tests
    import this module for `create_app` with settings of their own: an `app` built at import
    would read (and could refuse) the environment's settings they override."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    built = create_app()
    globals()["app"] = built  # later lookups find it without coming back here
    return built

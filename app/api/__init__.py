"""The HTTP API (DESIGN.md section 3): routers, error answers, the Host check and the body
size limit; and the dashboard's files at `/ui` (section 8).

The routes hold no logic: they parse the request, call one service and shape its answer.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.api.body import BodySizeLimit
from app.api.errors import install_error_handlers
from app.api.hosts import LoopbackOnly, TrustedHosts
from app.api.operation_ids import duplicate_operation_ids, operation_id
from app.api.request_metrics import RequestMetrics
from app.api.routes import (
    audit,
    events,
    flow_manager,
    flows,
    keys,
    metrics,
    runs,
    schedules,
    sessions,
    system,
    ui,
    users,
    workers,
)
from app.api.security import unguarded_routes
from app.settings import Settings

ROUTERS = (  # routes are matched in this order: the busiest (starting runs) first
    runs.router,
    events.router,
    flows.router,
    flows.json_router,
    flow_manager.router,
    schedules.router,
    users.router,
    keys.router,
    sessions.router,
    audit.router,
    workers.router,
    system.router,
    ui.router,
    metrics.router,
)


def register_routes(app: FastAPI, settings: Settings) -> None:
    routes = [route for router in ROUTERS for route in router.routes]
    unguarded = unguarded_routes(routes)
    if unguarded:  # a programming error: refuse to serve rather than leave a door open
        raise RuntimeError(f"routes without an access rule (authorize or public): {unguarded}")
    shared = duplicate_operation_ids(routes)
    if shared:  # a generated client would have two methods of one name
        raise RuntimeError(f"route functions sharing a name (their operation id): {shared}")
    install_error_handlers(app, routes)
    # The last added runs first: a request for a host the service does not answer to is
    # refused before anything else looks at it (and counted).
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(TrustedHosts, allowed_hosts=settings.trusted_hosts)
    if settings.listens_on_loopback:
        app.add_middleware(LoopbackOnly, host=settings.host)
    app.add_middleware(RequestMetrics)  # outermost: refusals are counted too
    for router in ROUTERS:
        app.include_router(router, generate_unique_id_function=operation_id)

"""`RequestMetrics`: counts every HTTP request by method, route template and status, and its
latency (`flow_manager_http_requests_total`, `flow_manager_http_request_duration_seconds`).

The outermost middleware, so that refusals made before routing (a Host not answered, a body
too large) are counted too. Routes are labelled by their template (`/runs/{run_id}`), never
by the raw path: one series per route, however many runs there are. A request that matched no
route is labelled `unmatched`, a method HTTP does not define `OTHER`: a client cannot make
series without end.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            services = getattr(scope["app"].state, "services", None)
            if services is not None:  # serving (the lifespan opened the services)
                route = scope.get("route")
                template = getattr(route, "path", None) or UNMATCHED
                method = scope["method"] if scope["method"] in METHODS else "OTHER"
                services.metrics.request(method, template, status, time.perf_counter() - began)

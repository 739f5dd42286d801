"""The Host check: requests naming a host the service does not answer to get 400.

Starlette's `TrustedHostMiddleware` (its pattern rules: `*`, `name`, `*.domain`; the port does
not count), answering in the API's error shape and naming the setting to change. Listening on
loopback, only the loopback names are answered by default (`Settings.trusted_hosts`): a web
page whose own name its attacker re-points at 127.0.0.1 (DNS rebinding) sends its own name as
Host and is refused, so a browser cannot be made to drive a local service.

`LoopbackOnly`: a service that believes it listens on loopback (HOST), and so answers without
authentication under AUTH=auto, refuses a request that reached it on any other address. Under
`uvicorn app.main:app --host 0.0.0.0` the app cannot see uvicorn's `--host`: without this, a
forgotten HOST would open an admin API, keyless, to the network (a Host header of `localhost`
passes the Host check from anywhere).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette._utils import parse_host_header  # what TrustedHostMiddleware itself parses with
from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import error_answer
from app.settings import is_loopback


class TrustedHosts(TrustedHostMiddleware):
    """400 for a request whose Host header is missing, malformed, or not in `allowed_hosts`."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        super().__init__(app, allowed_hosts, www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("host")
        if self.allows(header):
            await self.app(scope, receive, send)
            return
        await error_answer(400, _refusal(header))(scope, receive, send)

    def allows(self, header: str | None) -> bool:
        parsed = parse_host_header(header)
        if parsed is None:
            return False
        host = parsed.host.lower()
        return any(
            host == pattern or (pattern.startswith("*") and host.endswith(pattern[1:]))
            for pattern in self.allowed_hosts
        )


def _refusal(header: str | None) -> str:
    if header is None:
        return "the request has no Host header"
    return (
        f"this service does not answer to the host {header[:255]!r} (Host header); "
        "the names it answers to are set by ALLOWED_HOSTS"
    )


class LoopbackOnly:
    """400 for a request that arrived on an address that is not loopback (the ASGI scope's
    `server`, the socket's local address), for a service configured to listen on `host`, a
    loopback address. A Unix socket (no port) or a server that does not say is let through."""

    def __init__(self, app: ASGIApp, host: str) -> None:
        self.app = app
        self.host = host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") if scope["type"] in ("http", "websocket") else None
        if server is None or server[1] is None or is_loopback(str(server[0])):
            await self.app(scope, receive, send)
            return
        detail = (
            f"this service is set to listen on {self.host} (HOST) only, but this request "
            f"reached it on {server[0]}: set HOST to the address it listens on (e.g. "
            "`HOST=0.0.0.0 uvicorn app.main:app --host 0.0.0.0`), so that authentication "
            "and the Host check are set for it"
        )
        await error_answer(400, detail)(scope, receive, send)

"""Who is calling, and whether the route lets them: the one authorization dependency.

Every route declares what it needs, as the type of a parameter or in its `dependencies`:
`authorize` with the scopes the route requires (`Caller` aliases in `deps.py`), `public`
for the few routes open to anyone (health, readiness, sign-in), or `scraper` for `/metrics`
(which defers to `authorize` unless METRICS_TOKEN or METRICS_PUBLIC says otherwise).
`register_routes` refuses to start an app with a route that declares none, so no route can
forget it.

A caller authenticates with `Authorization: Bearer <api key>`, or with the dashboard's session
cookie. A request signed in by the cookie that changes something must also carry the session's
CSRF token in `X-CSRF-Token`: another site can make a browser send the cookie, never read the
token. When authentication is off, a caller without a credential acts as the local admin.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from starlette.routing import BaseRoute

from app.domain.access import Caller, Scope
from app.errors import CsrfError, MissingScopeError
from app.services.credentials import SESSION, Authenticator
from app.services.keys import csrf_token
from app.settings import Settings

SESSION_COOKIE = "fm_session"
CSRF_COOKIE = "fm_csrf"  # readable by the dashboard's script, which sends it back as a header
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="api key",
    description="An API key (`fm_...`), made by `python -m app users create` or `POST /keys`.",
)


async def authorize(
    required: SecurityScopes,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The caller, when its credential holds every scope the route requires.

    One dependency (besides the bearer scheme, which documents itself in the OpenAPI):
    every level of dependencies costs each request its resolution."""
    caller = await _authenticate(request, credentials)
    missing = sorted(scope for scope in required.scopes if Scope(scope) not in caller.scopes)
    if missing:
        raise MissingScopeError(
            f"this needs the scope {' and '.join(map(repr, missing))}, which the credential "
            "does not hold"
        )
    return caller


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Caller:
    authenticator: Authenticator = request.app.state.services.authenticator
    if credentials is not None:
        return await authenticator.caller(credentials.credentials)
    session = request.cookies.get(SESSION_COOKIE)
    if session is None:
        return await authenticator.caller(None)
    caller = await authenticator.caller(session, kind=SESSION)
    if request.method not in SAFE_METHODS:
        token = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(token.encode(), csrf_token(session).encode()):
            raise CsrfError()
    return caller


async def public() -> None:
    """Marks a route that anyone may call, with or without a credential."""


async def scraper(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Who may read `/metrics`: anyone with METRICS_PUBLIC=true; the bearer of METRICS_TOKEN
    (a Prometheus server, which then needs no user); otherwise an admin, as `authorize`
    decides."""
    settings: Settings = request.app.state.settings
    if settings.metrics_public:
        return
    token = settings.metrics_token
    if (
        token is not None
        and credentials is not None
        and hmac.compare_digest(credentials.credentials.encode(), token.get_secret_value().encode())
    ):
        return
    await authorize(SecurityScopes([Scope.ADMIN.value]), request, credentials)


ACCESS_RULES = (authorize, public, scraper)


def unguarded_routes(routes: Iterable[BaseRoute]) -> list[str]:
    """The API routes that declare no access rule (`ACCESS_RULES`)."""
    return [
        f"{sorted(route.methods or ())} {route.path}"
        for route in routes
        if isinstance(route, APIRoute) and not _declares_access(route.dependant)
    ]


def _declares_access(dependant: Dependant) -> bool:
    return any(
        dependency.call in ACCESS_RULES or _declares_access(dependency)
        for dependency in dependant.dependencies
    )

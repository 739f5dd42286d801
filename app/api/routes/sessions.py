"""`/auth/login` and `/auth/logout`: the dashboard's sign-in with a password.

The session is a cookie the page's scripts cannot read (`HttpOnly`), sent only to this site
(`SameSite=Strict`) and only over HTTPS when the request came that way (`Secure`). Requests
that change something must also send the CSRF token sign-in answered (the `fm_csrf` cookie,
readable by the dashboard's script, holds it too) in `X-CSRF-Token`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.body import JsonBodyRoute
from app.api.deps import PUBLIC, AnyCaller, KeysDep
from app.api.security import CSRF_COOKIE, SESSION_COOKIE
from app.domain.clock import utcnow
from app.schemas.access import SignedIn, SignIn
from app.schemas.common import error_responses

router = APIRouter(prefix="/auth", tags=["sessions"], route_class=JsonBodyRoute)


@router.post(
    "/login",
    summary="Sign in with a user name and password (the dashboard's session cookie)",
    response_model=SignedIn,
    responses=error_responses(401, 415, 422, 429),
    dependencies=[PUBLIC],
)
async def login(
    credentials: SignIn, keys: KeysDep, request: Request, response: Response
) -> SignedIn:
    session = await keys.sign_in(credentials.username, credentials.password)
    max_age = max(1, int((session.expires_at - utcnow()).total_seconds()))
    secure = request.url.scheme == "https"
    for name, value, http_only in (
        (SESSION_COOKIE, session.secret, True),
        (CSRF_COOKIE, session.csrf_token, False),
    ):
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=http_only,
            samesite="strict",
            secure=secure,
            path="/",
        )
    return SignedIn.of(session)


@router.post(
    "/logout",
    summary="Sign out: the session stops working at once",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403),
)
async def logout(caller: AnyCaller, keys: KeysDep, response: Response) -> None:
    await keys.sign_out(caller)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")

"""The dashboard's sign-in: a password, a session cookie, and CSRF protection."""

from __future__ import annotations

import httpx
import pytest

from app.settings import Settings
from tests.api.flows import GREET_YAML
from tests.api.support import YAML, As, add_user, auth_settings

PASSWORD = "correct horse battery staple"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return auth_settings(database_url, sign_in_attempts=3)


@pytest.fixture
async def ada(admin: As) -> As:
    return await add_user(admin, "ada", password=PASSWORD)


async def sign_in(client: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/auth/login", json={"username": "ada", "password": password})


async def test_signing_in_sets_an_http_only_same_site_session_cookie(
    ada: As, client: httpx.AsyncClient
) -> None:
    response = await sign_in(client)

    assert response.status_code == 200
    assert response.json()["username"] == "ada"
    cookies = {
        header.split("=", 1)[0]: header.lower()
        for header in response.headers.get_list("set-cookie")
    }
    assert "httponly" in cookies["fm_session"]
    assert "samesite=strict" in cookies["fm_session"]
    assert "httponly" not in cookies["fm_csrf"]  # the dashboard's script sends it back
    assert (await client.get("/me")).json()["username"] == "ada"


async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    ada: As, client: httpx.AsyncClient
) -> None:
    wrong = await sign_in(client, "not the password")
    unknown = await client.post("/auth/login", json={"username": "eve", "password": PASSWORD})

    assert (wrong.status_code, unknown.status_code) == (401, 401)
    assert wrong.json() == unknown.json()
    assert "fm_session" not in client.cookies


async def test_repeated_failures_for_a_name_are_throttled(
    ada: As, client: httpx.AsyncClient
) -> None:
    for _ in range(3):
        assert (await sign_in(client, "guess")).status_code == 401

    throttled = await sign_in(client)  # even the right password, for a while

    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0


async def test_a_change_signed_in_by_cookie_needs_the_csrf_token(
    ada: As, client: httpx.AsyncClient
) -> None:
    token = (await sign_in(client)).json()["csrf_token"]

    forged = await client.post("/flows", content=GREET_YAML, headers=YAML)
    wrong = await client.post("/flows", content=GREET_YAML, headers={**YAML, "X-CSRF-Token": "x"})
    genuine = await client.post(
        "/flows", content=GREET_YAML, headers={**YAML, "X-CSRF-Token": token}
    )

    assert (forged.status_code, wrong.status_code) == (403, 403)
    assert "X-CSRF-Token" in forged.json()["detail"]
    assert genuine.status_code == 201
    assert (await client.get("/flows")).status_code == 200  # reading needs no token


async def test_signing_out_ends_the_session_at_once(ada: As, client: httpx.AsyncClient) -> None:
    signed_in = await sign_in(client)
    session = client.cookies["fm_session"]
    token = signed_in.json()["csrf_token"]

    signed_out = await client.post("/auth/logout", headers={"X-CSRF-Token": token})
    client.cookies.set("fm_session", session)  # a copy kept by whoever stole it
    replayed = await client.get("/me")

    assert signed_out.status_code == 204
    assert replayed.status_code == 401


async def test_a_session_cannot_be_used_as_a_bearer_key(ada: As, client: httpx.AsyncClient) -> None:
    await sign_in(client)
    session = client.cookies["fm_session"]
    assert (await client.get("/me")).status_code == 200  # known (and cached) as a session
    client.cookies.clear()

    response = await client.get("/me", headers={"Authorization": f"Bearer {session}"})

    assert response.status_code == 401


async def test_a_user_without_a_password_cannot_sign_in(
    admin: As, client: httpx.AsyncClient
) -> None:
    await add_user(admin, "bob")

    response = await client.post("/auth/login", json={"username": "bob", "password": PASSWORD})

    assert response.status_code == 401


async def test_a_short_password_is_refused_when_the_user_is_made(admin: As) -> None:
    response = await admin.post("/users", json={"username": "eve", "password": "short"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]

"""Who may call (DESIGN.md section 7): API keys, their scopes, expiry and revocation, and the
anonymous local admin when authentication is off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.api.flows import GREET_YAML
from tests.api.support import YAML, As, add_user, auth_settings, serve
from tests.polling import until

PUBLIC_ROUTES = {("GET", "/health"), ("GET", "/ready"), ("POST", "/auth/login")}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return auth_settings(database_url)


def operations(client_schema: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in client_schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


def concrete(path: str) -> str:
    """A path of the OpenAPI document with each parameter filled in."""
    values = {
        "{name}": "Greet",
        "{version}": "1",
        "{run_id}": "00000000-0000-4000-8000-000000000000",
        "{user}": "ada",
        "{username}": "ada",
        "{key_id}": "0123456789abcdef",
    }
    for placeholder, value in values.items():
        path = path.replace(placeholder, value)
    return path


async def test_every_route_but_health_and_readiness_refuses_an_anonymous_caller(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    refused: dict[tuple[str, str], int] = {}

    for method, path in operations(schema):
        response = await client.request(method, concrete(path))
        refused[method, path] = response.status_code
        if (method, path) not in PUBLIC_ROUTES:
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"

    assert len(refused) >= 30  # the walk saw the whole API
    assert (await client.get("/health")).status_code == 200


async def test_a_key_lets_its_user_in_and_says_who_it_is(admin: As) -> None:
    ada = await add_user(admin, "ada", email="ada@example.org")

    me = await ada.get("/me")

    assert me.status_code == 200
    assert me.json() == {
        "username": "ada",
        "admin": False,
        "scopes": ["flows:read", "flows:write", "runs:read", "runs:write"],
    }
    assert (await admin.get("/me")).json()["admin"] is True


@pytest.mark.parametrize(
    "key",
    [
        "fm_not-a-key-anyone-made-0123456789abcdefghijk",
        "",
        "x" * 5000,
        "fm_\u00e9\u00e8",
    ],
    ids=["unknown", "empty", "huge", "not-ascii"],
)
async def test_an_unknown_key_is_refused_with_401(client: httpx.AsyncClient, key: str) -> None:
    response = await client.get("/flows", headers={b"Authorization": f"Bearer {key}".encode()})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_revoked_key_is_refused_at_once(admin: As) -> None:
    ada = await add_user(admin, "ada")
    assert (await ada.get("/flows")).status_code == 200  # now cached by the process
    key_id = (await ada.get("/keys")).json()[0]["id"]

    revoked = await ada.delete(f"/keys/{key_id}")
    after = await ada.get("/flows")

    assert revoked.status_code == 204
    assert (after.status_code, after.json()) == (401, {"detail": "the API key was revoked"})
    listed = (await admin.get("/keys", params={"user": "ada"})).json()
    assert listed[0]["revoked_at"] is not None


async def test_an_expired_key_is_refused(admin: As) -> None:
    await add_user(admin, "ada")
    soon = datetime.now(UTC) + timedelta(seconds=1)
    made = await admin.post("/keys", json={"user": "ada", "expires_at": soon.isoformat()})
    ada = As(admin.client, made.json()["key"], "ada")
    assert (await ada.get("/me")).status_code == 200

    async def refused() -> bool:
        return (await ada.get("/me")).status_code == 401

    await until(refused, deadline=5)
    assert (await ada.get("/me")).json() == {"detail": "the API key has expired"}


async def test_a_key_in_the_past_cannot_be_made(admin: As) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)

    response = await admin.post("/keys", json={"expires_at": past.isoformat()})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "expires_at"]


async def test_a_key_without_a_scope_is_refused_with_403_and_does_nothing(admin: As) -> None:
    await add_user(admin, "ada")
    made = await admin.post("/keys", json={"user": "ada", "scopes": ["flows:read", "runs:read"]})
    reader = As(admin.client, made.json()["key"], "ada")

    listed = await reader.get("/flows")
    registered = await reader.post("/flows", content=GREET_YAML, headers=YAML)

    assert listed.status_code == 200
    assert registered.status_code == 403
    assert "flows:write" in registered.json()["detail"]
    assert (await admin.get("/flows")).json() == []


async def test_a_key_cannot_make_a_key_with_more_rights_than_its_own(admin: As) -> None:
    await add_user(admin, "ada")
    made = await admin.post("/keys", json={"user": "ada", "scopes": ["runs:read"]})
    reader = As(admin.client, made.json()["key"], "ada")

    wider = await reader.post("/keys", json={"scopes": ["runs:read", "runs:write"]})
    same = await reader.post("/keys", json={"name": "copy"})

    assert wider.status_code == 403
    assert same.status_code == 201
    assert same.json()["scopes"] == ["runs:read"]


async def test_a_user_who_is_not_an_admin_cannot_hold_the_admin_scope(admin: As) -> None:
    ada = await add_user(admin, "ada")

    for_ada = await admin.post("/keys", json={"user": "ada", "scopes": ["admin"]})
    by_ada = await ada.post("/keys", json={"scopes": ["admin"]})

    assert for_ada.status_code == 422
    assert by_ada.status_code == 422


async def test_admin_routes_refuse_other_users_with_403(admin: As) -> None:
    ada = await add_user(admin, "ada")

    for method, path in [
        ("GET", "/users"),
        ("POST", "/users"),
        ("DELETE", "/users/admin"),
        ("GET", "/workers"),
        ("GET", "/audit"),
    ]:
        response = await ada.request(method, path, json={"username": "eve"})
        assert response.status_code == 403, (method, path)
    assert [user["username"] for user in (await admin.get("/users")).json()] == ["ada", "admin"]


async def test_an_admin_key_without_the_admin_scope_acts_as_a_user(admin: As) -> None:
    made = await admin.post("/keys", json={"scopes": ["flows:read", "runs:read"]})
    limited = As(admin.client, made.json()["key"], "admin")

    assert (await limited.get("/users")).status_code == 403
    assert (await limited.get("/me")).json()["scopes"] == ["flows:read", "runs:read"]


async def test_keys_are_shown_once_and_listed_by_prefix(admin: As) -> None:
    ada = await add_user(admin, "ada")

    made = (await ada.post("/keys", json={"name": "laptop"})).json()
    listed = (await ada.get("/keys")).json()

    assert made["key"].startswith(made["prefix"])
    assert {key["name"] for key in listed} == {"tests", "laptop"}
    assert all("key" not in key for key in listed)
    assert all(made["key"] != value for key in listed for value in key.values())


async def test_a_user_cannot_see_or_revoke_another_users_keys(admin: As) -> None:
    ada = await add_user(admin, "ada")
    bob = await add_user(admin, "bob")
    ada_key = (await ada.get("/keys")).json()[0]["id"]

    assert (await bob.get("/keys", params={"user": "ada"})).status_code == 403
    assert (await bob.delete(f"/keys/{ada_key}")).status_code == 404
    assert (await ada.get("/me")).status_code == 200


async def test_last_used_at_is_written_without_a_commit_per_request(
    admin: As, client: httpx.AsyncClient
) -> None:
    ada = await add_user(admin, "ada")
    for _ in range(3):
        assert (await ada.get("/me")).status_code == 200
    assert (await ada.get("/keys")).json()[0]["last_used_at"] is None  # not written yet

    services = client._transport.app.state.services  # type: ignore[attr-defined]
    await services.authenticator.flush_usage()

    assert (await ada.get("/keys")).json()[0]["last_used_at"] is not None


async def test_users_are_created_listed_and_deleted_by_admins(admin: As) -> None:
    ada = await add_user(admin, "ada")
    key_id = (await ada.get("/keys")).json()[0]["id"]

    deleted = await admin.delete("/users/ada")
    again = await admin.post("/users", json={"username": "ada"})

    assert deleted.status_code == 204
    assert (await ada.get("/me")).status_code == 401
    assert again.status_code == 409  # names are never reused
    assert "ada" not in [user["username"] for user in (await admin.get("/users")).json()]
    actions = [
        (entry["action"], entry["target"]) for entry in (await admin.get("/audit")).json()["items"]
    ]
    assert ("user.delete", "ada") in actions
    assert ("key.create", "ada") in actions
    assert key_id in str((await admin.get("/audit")).json())


async def test_a_user_who_owns_flows_is_not_deleted_until_they_are_given_away(
    admin: As,
) -> None:
    ada = await add_user(admin, "ada")
    await ada.register(GREET_YAML)

    refused = await admin.delete("/users/ada")
    given = await admin.patch("/flows/Greet", json={"owner": "admin"})
    deleted = await admin.delete("/users/ada")

    assert refused.status_code == 409
    assert "'Greet'" in refused.json()["detail"]
    assert (given.status_code, given.json()["owner"]) == (200, "admin")
    assert deleted.status_code == 204


async def test_an_admin_deletes_other_admins_but_not_itself(admin: As) -> None:
    root = await add_user(admin, "root", admin=True)

    assert (await root.delete("/users/admin")).status_code == 204
    assert (await root.delete("/users/root")).status_code == 409
    assert (await admin.get("/me")).status_code == 401


@pytest.fixture
def open_settings(database_url: str) -> Settings:
    from tests.api.support import api_settings

    return api_settings(database_url)  # 127.0.0.1, AUTH=auto: off


@pytest.fixture
async def open_client(open_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(open_settings) as opened:
        yield opened


async def test_with_authentication_off_an_anonymous_caller_is_the_local_admin(
    open_client: httpx.AsyncClient,
) -> None:
    me = await open_client.get("/me")
    registered = await open_client.post("/flows", content=GREET_YAML, headers=YAML)

    assert me.json() == {
        "username": "admin",
        "admin": True,
        "scopes": ["admin", "flows:read", "flows:write", "runs:read", "runs:write"],
    }
    assert registered.status_code == 201
    assert (await open_client.get("/flows/Greet")).json()["owner"] == "admin"


async def test_with_authentication_off_a_bad_key_is_still_refused(
    open_client: httpx.AsyncClient,
) -> None:
    response = await open_client.get("/me", headers={"Authorization": "Bearer fm_nope"})

    assert response.status_code == 401

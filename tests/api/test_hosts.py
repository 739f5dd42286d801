"""The Host check: only the names in ALLOWED_HOSTS, by default the loopback names when the
service listens on loopback (a page that re-points its own name at 127.0.0.1 is refused)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message, Scope

from app.main import create_app
from app.settings import Settings
from tests.api.flows import GREET_YAML
from tests.api.support import YAML, api_settings, serve

LOOPBACK_HOSTS = [
    "localhost",
    "LocalHost",
    "localhost:8000",
    "127.0.0.1",
    "127.0.0.1:65535",
    "[::1]",
    "[::1]:8000",
]
FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:8000",
    "localhost.evil.example",
    "127.0.0.1.nip.io",
    "0.0.0.0",
    "[::2]",
]
MALFORMED_HOSTS = ["", "a b", "localhost:port", "[::1", "user@localhost", "localhost/x"]


def sqlite_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return api_settings(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", **overrides)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The service with its default settings: listening on 127.0.0.1, ALLOWED_HOSTS unset."""
    async with serve(sqlite_settings(tmp_path)) as client:
        yield client


async def status_for(client: httpx.AsyncClient, host: str) -> int:
    return (await client.get("/health", headers={"host": host})).status_code


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
async def test_the_loopback_names_are_answered_by_default(
    client: httpx.AsyncClient, host: str
) -> None:
    assert await status_for(client, host) == 200


@pytest.mark.parametrize("host", FOREIGN_HOSTS + MALFORMED_HOSTS)
async def test_other_hosts_are_refused_by_default_with_a_clear_400(
    client: httpx.AsyncClient, host: str
) -> None:
    response = await client.get("/health", headers={"host": host})

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert "ALLOWED_HOSTS" in response.json()["detail"]


async def test_a_refused_host_changes_nothing(client: httpx.AsyncClient) -> None:
    refused = await client.post(
        "/flows", content=GREET_YAML, headers={**YAML, "host": "rebound.evil.example"}
    )

    assert refused.status_code == 400
    assert "'rebound.evil.example'" in refused.json()["detail"]
    assert (await client.get("/flows")).json() == []


async def test_a_request_without_host_is_refused() -> None:
    """HTTP/1.0 may omit Host; the check cannot tell where such a request was meant to go."""
    app = create_app(api_settings("sqlite+aiosqlite://"))
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "http_version": "1.0",
        "method": "GET",
        "path": "/health",
        "raw_path": b"/health",
        "query_string": b"",
        "headers": [],
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
    }
    await app(scope, receive, send)

    assert sent[0]["status"] == 400
    assert b"no Host header" in sent[1]["body"]


async def test_allowed_hosts_replace_the_default(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, allowed_hosts="api.example.com, *.corp.example")
    async with serve(settings) as client:
        assert await status_for(client, "api.example.com") == 200
        assert await status_for(client, "API.example.com:443") == 200
        assert await status_for(client, "flows.corp.example") == 200
        assert await status_for(client, "corp.example.evil") == 400
        assert await status_for(client, "localhost") == 400


async def test_any_host_is_answered_when_listening_beyond_loopback(tmp_path: Path) -> None:
    """Behind a load balancer (HOST=0.0.0.0) the names are the balancer's to check, unless
    ALLOWED_HOSTS is set."""
    async with serve(sqlite_settings(tmp_path, host="0.0.0.0")) as client:
        for host in ["flows.example.com", "10.0.0.7:8000", "localhost"]:
            assert await status_for(client, host) == 200, host


async def health_on(settings: Settings, address: str) -> httpx.Response:
    """GET /health with `Host: localhost`, arriving on the server's local `address` (the ASGI
    scope's `server`, which httpx's ASGI transport takes from the URL)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{address}") as client:
            return await client.get("/health", headers={"host": "localhost"})


async def test_a_loopback_service_refuses_what_arrives_on_another_address(
    tmp_path: Path,
) -> None:
    """`uvicorn app.main:app --host 0.0.0.0` without HOST: the app believes it listens on
    loopback only (no authentication under AUTH=auto); a request from the network is refused,
    whatever Host it names, rather than served as the local admin."""
    misdirected = await health_on(sqlite_settings(tmp_path), "10.1.2.3:8000")
    local = await health_on(sqlite_settings(tmp_path), "127.0.0.1:8000")
    told = await health_on(sqlite_settings(tmp_path, host="0.0.0.0"), "10.1.2.3:8000")

    assert misdirected.status_code == 400
    assert "set HOST to the address it listens on" in misdirected.json()["detail"]
    assert (local.status_code, told.status_code) == (200, 200)

"""The `http` connection plugin against a real local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.connections.http import HttpConnection
from app.connections.manager import ConnectionManager
from app.errors import ConnectionFailedError
from tests.http_server import LocalHttpServer, serve


@pytest.fixture
def http_server() -> Iterator[LocalHttpServer]:
    with serve() as server:
        yield server


def test_plugin_identity() -> None:
    assert (HttpConnection.type, HttpConnection.driver) == ("http", "httpx")
    assert HttpConnection.description


async def test_session_lends_one_client_configured_by_the_params(
    http_server: LocalHttpServer,
) -> None:
    plugin = HttpConnection(
        "api", {"base_url": http_server.url + "/v2", "headers": {"Authorization": "Bearer t"}}
    )
    await plugin.open()
    async with plugin.session() as first, plugin.session() as second:
        assert first is second  # one pooled client per connection
        response = await first.get("/ping")
    await plugin.close()

    assert response.status_code == 200
    received = http_server.requests[-1]
    assert received.path == "/v2/ping"
    assert received.headers["authorization"] == "Bearer t"


async def test_timeout_param_bounds_each_request(http_server: LocalHttpServer) -> None:
    plugin = HttpConnection("slow", {"base_url": http_server.url, "timeout": 0.2})
    await plugin.open()
    try:
        async with plugin.session() as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/hang")
    finally:
        await plugin.close()


async def test_defaults_need_no_params(http_server: LocalHttpServer) -> None:
    plugin = HttpConnection("plain", {})
    await plugin.open()
    try:
        async with plugin.session() as client:
            assert client.timeout == httpx.Timeout(30.0, connect=10.0)
            response = await client.get(http_server.url + "/json")
            assert response.json() == {"hello": "world"}
    finally:
        await plugin.close()


@pytest.mark.parametrize("verify", [True, False])
async def test_verify_accepts_a_boolean(verify: bool) -> None:
    plugin = HttpConnection("tls", {"verify": verify, "max_connections": 5})
    await plugin.open()
    await plugin.close()


async def test_close_closes_the_client_and_the_session_is_then_refused() -> None:
    plugin = HttpConnection("api", {})
    await plugin.open()
    async with plugin.session() as client:
        pass
    await plugin.close()
    assert client.is_closed
    with pytest.raises(ConnectionFailedError, match=r"'api'.*not open"):
        async with plugin.session():
            pass
    await plugin.close()  # closing twice is harmless


def test_an_unknown_param_names_the_connection_and_the_param() -> None:
    with pytest.raises(ConnectionFailedError, match=r"'payments'.*'retries'"):
        HttpConnection("payments", {"base_url": "http://x", "retries": 3})


def test_params_from_the_environment_may_be_text() -> None:
    params = {"type": "http", "timeout": "2.5", "max_connections": "7", "verify": "false"}
    settings = HttpConnection("api", params).settings
    assert (settings.timeout, settings.max_connections, settings.verify) == (2.5, 7, False)


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({"base_url": 5}, "base_url"),
        ({"headers": ["a"]}, "headers"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"verify": 1}, "verify"),
        ({"verify": "maybe"}, "verify"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": 2.5}, "max_connections"),
    ],
)
def test_invalid_params_are_refused(params: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConnectionFailedError, match=rf"'api'.*{complaint}"):
        HttpConnection("api", params)


async def test_a_missing_ca_bundle_fails_to_open(tmp_path: Path) -> None:
    plugin = HttpConnection("api", {"verify": str(tmp_path / "no-such-ca.pem")})
    with pytest.raises(ConnectionFailedError, match=r"'api'.*FileNotFoundError"):
        await plugin.open()


async def test_the_manager_refuses_an_unknown_param() -> None:
    manager = ConnectionManager({"http": HttpConnection})
    with pytest.raises(ConnectionFailedError, match=r"'shop'.*'colour'"):
        async with manager.session("shop", "http", {"colour": "red"}):
            pass
    await manager.aclose()


async def test_the_manager_opens_it_for_the_http_type(http_server: LocalHttpServer) -> None:
    manager = ConnectionManager({"http": HttpConnection})
    params = {"base_url": http_server.url, "timeout": 5}
    try:
        async with manager.session("api", "http", params) as client:
            response = await client.get("/text")
        async with manager.session("api", "http", params) as again:
            assert again is client  # the same configuration shares one client
    finally:
        await manager.aclose()
    assert response.text == "plain text"
    assert client.is_closed

"""Connections of the service started as users start it (`python -m app serve`): none is reset
under load, an idle one stays open as long as clients keep theirs, and one that the server
closes after an error is announced as closing.

A server that closes an idle keep-alive connection while its client still counts it reusable
races the client's next request: sent as the server closes, it is reset (`httpx.ReadError`),
with nothing in the server's log. uvicorn's own keep-alive (5 s) is exactly httpx's pool expiry
(5 s), so any httpx client that paused for just under 5 s could lose its next request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bench.bench_connections import (
    KEEPALIVE_EXPIRY,
    hammer,
    register_chain,
    seconds_until_idle_close,
)
from tests.api.flows import GREET_YAML
from tests.api.processes import SERVE, Server, free_port, started_server
from tests.api.support import YAML, api_settings, serve

CLIENTS = 64
# Long enough for the pausing half of the clients to send once more after a short burst and a
# pause just short of their pool's keep-alive expiry, on a busy machine.
BURST_SECONDS = (0.1, 0.5)
LOAD_SECONDS = KEEPALIVE_EXPIRY + 4
MAX_HEADER_BYTES = 65536  # the default
ENDLESS_HEADER_BYTES = 64 * 1024 * 1024  # far more than the kernel's buffers hold


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`python -m app serve --host 127.0.0.1` on SQLite, with HOST saying otherwise: the
    command line is what counts."""
    directory = tmp_path_factory.mktemp("served")
    port = free_port()
    settings = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'store.db'}",
        "HOST": "0.0.0.0",
        "LOG_LEVEL": "warning",
    }
    command = [*SERVE, "--host", "127.0.0.1", "--port", str(port)]
    with started_server(command, port, settings, directory) as running:
        yield running


@pytest.mark.timeout(120)
async def test_64_clients_see_no_connection_reset(server: Server) -> None:
    await register_chain(server.url)
    idle_probe = asyncio.create_task(seconds_until_idle_close(server.url))

    tally = await hammer(
        server.url, clients=CLIENTS, seconds=LOAD_SECONDS, burst_seconds=BURST_SECONDS
    )

    assert tally.failures == 0, tally.summary()
    assert tally.boundary_reuses >= CLIENTS // 2, tally.summary()
    closed_after = await idle_probe
    assert closed_after is None, (
        f"the server closed an idle connection after {closed_after:.1f} s, before httpx's "
        f"pool would ({KEEPALIVE_EXPIRY} s): a request sent on it then is reset"
    )
    assert "Traceback" not in server.log.read_text()


async def test_a_request_head_past_max_header_bytes_is_refused(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        within = await client.get("/health", headers={"x-padding": "a" * (MAX_HEADER_BYTES - 200)})
        past = await client.get("/health", headers={"x-padding": "a" * MAX_HEADER_BYTES})
        after = await client.get("/health")

    assert within.status_code == 200
    assert past.status_code == 431
    assert past.headers["connection"] == "close"
    assert "MAX_HEADER_BYTES (65536 bytes)" in past.json()["detail"]
    assert after.status_code == 200


async def test_a_request_line_past_max_header_bytes_is_refused_as_a_head(server: Server) -> None:
    """A long URL is part of the head: 431 like a long header, not the parser's bare 400.

    Sent by hand: httpx refuses to send a URL this long."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    path = "/flows/" + "a" * (MAX_HEADER_BYTES + 500)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)  # the server closes it
    writer.close()

    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert b"MAX_HEADER_BYTES (65536 bytes)" in answer


async def test_a_large_body_is_not_taken_for_a_head(server: Server) -> None:
    """The head limit counts only the reads before a head ends, never a body's."""
    padded = GREET_YAML + "# " + "x" * 900_000 + "\n"  # within MAX_BODY_BYTES (1 MiB)
    async with httpx.AsyncClient(base_url=server.url) as client:
        for _ in range(3):  # on one keep-alive connection, body after body
            response = await client.put("/flows/Greet", content=padded, headers=YAML)
            assert response.status_code in (200, 201), response.text
        assert (await client.get("/flows/Greet")).status_code == 200


async def test_a_head_that_never_ends_is_not_buffered(server: Server) -> None:
    """uvicorn's parser buffers a request's headers without limit: a client sending one
    endless header grew the server by as much. Now it hangs up on the client."""
    host, port = server.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    sent, chunk = 0, b"a" * 65536
    with contextlib.suppress(ConnectionError):
        writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Endless: ")
        while sent < ENDLESS_HEADER_BYTES:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
    writer.close()

    assert sent < ENDLESS_HEADER_BYTES, "the server took the whole endless header"
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/health")).status_code == 200


async def test_serve_host_decides_the_names_answered(server: Server) -> None:
    """HOST says 0.0.0.0 (any name), `--host 127.0.0.1` says loopback: only loopback names."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        rebound = await client.get("/health", headers={"host": "rebound.evil.example"})
        local = await client.get("/health", headers={"host": "localhost:8000"})

    assert rebound.status_code == 400
    assert "ALLOWED_HOSTS" in rebound.json()["detail"]
    assert local.status_code == 200


async def test_a_500_answer_closes_its_connection(tmp_path: Path) -> None:
    """uvicorn closes the connection after an unexpected error; the answer says so, so the
    client does not send its next request on it."""
    settings = api_settings(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    async with serve(settings, raise_app_exceptions=False) as client:
        app = client._transport.app  # type: ignore[attr-defined]
        assert isinstance(app, FastAPI)

        async def broken() -> None:
            raise RuntimeError("a bug")

        app.add_api_route("/broken", broken)
        response = await client.get("/broken")

    assert response.status_code == 500
    assert response.headers["connection"] == "close"
    assert response.json() == {"detail": "Internal Server Error"}

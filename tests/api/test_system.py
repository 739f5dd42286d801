"""Liveness, readiness and the connection plugins."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.collector import YOUNGEST_GENERATION_THRESHOLD
from tests.api.flows import GREET_YAML
from tests.api.support import YAML, api_settings, serve


async def test_health_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_when_the_store_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")

    assert (response.status_code, response.json()) == (200, {"status": "ready"})


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that is bound but not listening: every connection to it is refused."""
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        yield reserved.getsockname()[1]


async def test_not_ready_while_the_store_is_unreachable(refused_port: int) -> None:
    settings = api_settings(
        f"postgresql+asyncpg://postgres@127.0.0.1:{refused_port}/nowhere",
        migrate_on_start=False,
        embedded_worker=False,
    )
    async with serve(settings) as client:
        ready = await client.get("/ready")
        health = await client.get("/health")

    assert ready.status_code == 503
    assert ready.json() == {"detail": "the store is unreachable"}
    assert health.status_code == 200


async def test_connections_lists_each_plugin_and_its_driver(client: httpx.AsyncClient) -> None:
    response = await client.get("/connections")

    assert response.status_code == 200
    plugins = {plugin["type"]: plugin for plugin in response.json()}
    assert set(plugins) >= {"postgres", "redis", "http"}
    assert plugins["postgres"]["driver"] == "asyncpg"
    assert plugins["redis"]["installed"] is True
    assert all(plugin["description"] for plugin in plugins.values())


async def test_unknown_routes_and_methods_keep_fastapis_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    wrong_method = await client.patch("/flows")

    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert (wrong_method.status_code, wrong_method.json()) == (
        405,
        {"detail": "Method Not Allowed"},
    )


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/flows", "GET, POST"),
        ("POST", "/flows/Hello", "DELETE, GET, PATCH, PUT"),
        ("DELETE", "/runs/00000000-0000-4000-8000-000000000000", "GET"),
        ("GET", "/flows/Hello/execute", "POST"),
        ("POST", "/openapi.json", "GET, HEAD"),
    ],
)
async def test_a_wrong_method_lists_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)

    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == set(allowed.split(", "))


async def test_startup_objects_leave_the_collectors_sight_while_serving(tmp_path: Path) -> None:
    # A full collection walking them stalled every request for 80 ms; at shutdown they come
    # back, or a process building many apps would never collect their cycles.
    settings = api_settings(f"sqlite+aiosqlite:///{tmp_path / 'flows.db'}")
    async with serve(settings) as client:
        frozen_while_serving = gc.get_freeze_count()
        assert (await client.get("/health")).status_code == 200

    assert frozen_while_serving > 10_000
    assert gc.get_freeze_count() == 0


async def test_requests_in_flight_do_not_set_off_the_collector(tmp_path: Path) -> None:
    # Their objects are freed as they end: with CPython's threshold (700 objects), those of
    # 16 requests in flight set off a pass of the youngest generation every few requests.
    settings = api_settings(f"sqlite+aiosqlite:///{tmp_path / 'flows.db'}")
    thresholds = gc.get_threshold()
    body = {"inputs": {"name": "x"}}
    async with serve(settings) as client:
        await client.post("/flows", content=GREET_YAML, headers=YAML)

        async def sixteen_at_once() -> list[int]:
            requests = (client.post("/flows/Greet/execute", json=body) for _ in range(16))
            return [answer.status_code for answer in await asyncio.gather(*requests)]

        assert gc.get_threshold()[0] >= YOUNGEST_GENERATION_THRESHOLD
        await sixteen_at_once()  # the first ones fill caches that live on
        before = gc.get_stats()[0]["collections"]
        statuses = await sixteen_at_once() + await sixteen_at_once()
        passes = gc.get_stats()[0]["collections"] - before

    assert statuses == [200] * 32
    assert passes == 0
    assert gc.get_threshold() == thresholds  # given back with the frozen objects

"""The service as users run it: a real uvicorn process, spoken to over real HTTP."""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.flow_manager_sample import SAMPLE
from tests.api.flows import GREET_YAML
from tests.api.processes import Server, free_port, started_server
from tests.api.support import JSON, TASK_MODULES, YAML, poll_run

MAX_BODY_BYTES = 4096
UVICORN = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    environment = {
        "DATABASE_URL": database_url,
        "TASK_MODULES": ",".join(TASK_MODULES),
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    command = [*UVICORN, "--host", "127.0.0.1", "--port", str(port)]
    with started_server(command, port, environment, tmp_path) as running:
        yield running


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def test_a_flow_is_registered_and_executed_over_http(http: httpx.AsyncClient) -> None:
    registered = await http.post("/flows", content=GREET_YAML, headers=YAML)
    executed = await http.post("/flows/Greet/execute", json={"inputs": {"name": "Ada"}})
    queued = await http.post("/flows/Greet/runs", json={"inputs": {"name": "Bo"}})

    assert registered.status_code == 201
    assert (executed.status_code, executed.json()["outputs"]["text"]) == (200, "Hello, Ada!")
    assert queued.status_code == 202
    run = await poll_run(http, queued.json()["run_id"])
    assert (run["status"], run["outputs"]["text"]) == ("completed", "Hello, Bo!")


async def test_the_flow_manager_sample_answers_as_the_seed_says(http: httpx.AsyncClient) -> None:
    response = await http.post("/flow/run", json=SAMPLE)

    answer = response.json()
    assert (response.status_code, answer["status"]) == (200, "completed")
    assert answer["executed_tasks"] == ["task1", "task2", "task3"]
    assert answer["final_output"] == {"stored": True}


async def test_large_bodies_are_refused_declared_or_streamed(http: httpx.AsyncClient) -> None:
    async def stream() -> AsyncIterator[bytes]:
        for _ in range(1000):  # 1 MB in all, far past the limit
            yield b" " * 1000

    declared = await http.post("/flows", content=b" " * (MAX_BODY_BYTES + 1), headers=YAML)
    streamed = await http.post("/flows/Greet/execute", content=stream(), headers=JSON)
    health = await http.get("/health")

    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert str(MAX_BODY_BYTES) in streamed.json()["detail"]
    assert health.status_code == 200
    assert (await http.get("/flows")).json() == []


async def test_garbage_does_not_hurt_the_server(http: httpx.AsyncClient, server: Server) -> None:
    for body in (b"\x00\xff" * 100, b"{" * 3000, b"flow: [", b""):
        for path in ("/flows", "/flows/validate", "/flow/run", "/flows/Greet/execute"):
            response = await http.post(path, content=body, headers=JSON)

            assert 400 <= response.status_code < 500, (path, body[:10], response.text)

    assert (await http.get("/health")).status_code == 200
    assert "Traceback" not in server.log.read_text()


async def test_the_docs_are_served(http: httpx.AsyncClient) -> None:
    docs = await http.get("/docs")
    spec = await http.get("/openapi.json")

    assert docs.status_code == 200
    assert spec.json()["info"]["title"] == "Flow Manager"


async def test_sigterm_stops_the_server_cleanly(http: httpx.AsyncClient, server: Server) -> None:
    await http.post("/flows/Greet/execute", json={})  # some work done first (a 404)

    code = server.stop()

    log = server.log.read_text()
    # uvicorn re-raises the signal once its shutdown is done, so the code may say SIGTERM.
    assert code in (0, -signal.SIGTERM), log
    assert "Application shutdown complete" in log
    assert "Traceback" not in log


def test_uvicorn_serves_the_module_level_app_with_reload(tmp_path: Path) -> None:
    """The Flow Manager seed's start command, `uvicorn app.main:app --reload`."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--reload", "--port", str(port)]
    settings = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'flows.db'}"}

    with started_server(command, port, settings, tmp_path) as running:
        try:
            health = httpx.get(f"{running.url}/health", timeout=10)
            flows = httpx.get(f"{running.url}/flows", timeout=10)
        finally:
            # SIGTERM, not the kill that ends started_server: the reloader stops its child.
            code = running.stop()

    assert (health.status_code, flows.status_code, flows.json()) == (200, 200, [])
    assert code in (0, -signal.SIGTERM), running.log.read_text()

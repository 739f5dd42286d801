"""Logs: `LOG_FORMAT=json` makes every line of the process one JSON object (uvicorn's
included), tagged with the run, step and attempt; a task's own lines are kept per attempt
and served by `GET /runs/{id}/steps/{step_id}/logs`."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.api.processes import free_port, started_server
from tests.api.support import TASK_MODULES, YAML, api_settings, register, serve

LOGGED_YAML = """\
flow: Logged
inputs:
  - {name: note, type: string, default: hello}
steps:
  - log: {id: say, message: "note: ${inputs.note}"}
  - task: LogAndFail
    id: flaky
    inputs: {message: "${inputs.note}", lines: 1}
    retry: {max_attempts: 2, delay: 0}
    on_error: continue
"""
CHATTY_YAML = """\
flow: Chatty
steps:
  - task: LogAndFail
    id: chatty
    inputs: {message: "0123456789abcdef", lines: 1000}
"""


def test_json_logs_make_every_line_one_object(tmp_path: Path) -> None:
    port = free_port()
    environment = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
        "TASK_MODULES": ",".join(TASK_MODULES),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
    }
    command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
    with started_server(command, port, environment, tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            client.post("/flows", content=LOGGED_YAML, headers=YAML).raise_for_status()
            run = client.post("/flows/Logged/execute", json={}).json()
        # uvicorn re-raises the signal once its shutdown is done: the code may say SIGTERM.
        assert server.stop() in (0, -signal.SIGTERM)

    lines = server.log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # each line is one JSON object
    assert all({"at", "level", "logger", "message"} <= set(record) for record in records)
    access = [record for record in records if record["logger"] == "uvicorn.access"]
    assert {"method": "POST", "path": "/flows/Logged/execute", "status": 200}.items() <= access[
        -1
    ].items()
    assert any(record["logger"] == "uvicorn.error" for record in records)  # "Started server..."
    assert any(record["message"] == "Application shutdown complete." for record in records)
    said = next(record for record in records if record["message"] == "note: hello")
    assert said["run_id"] == run["run_id"]
    assert said["flow"] == "Logged"
    assert (said["step_id"], said["attempt"]) == ("say", 1)
    assert said["worker"].split(":")[1] == str(server.process.pid)


async def logs_of(
    client: httpx.AsyncClient, run_id: str, step_id: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(f"/runs/{run_id}/steps/{step_id}/logs", params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def messages(attempt: dict[str, Any]) -> list[str]:
    return [line["message"] for line in attempt["lines"]]


async def test_each_attempt_keeps_what_its_task_logged(client: httpx.AsyncClient) -> None:
    await register(client, LOGGED_YAML)
    run = (await client.post("/flows/Logged/execute", json={"inputs": {"note": "hi"}})).json()

    said = await logs_of(client, run["run_id"], "say")
    flaky = await logs_of(client, run["run_id"], "flaky")
    second = await logs_of(client, run["run_id"], "flaky", attempt=2)

    assert (said["run_id"], said["step_id"], said["task_index"]) == (run["run_id"], "say", 0)
    assert [messages(attempt) for attempt in said["attempts"]] == [["note: hi"]]
    assert said["attempts"][0]["lines"][0]["level"] == "info"
    assert [attempt["attempt"] for attempt in flaky["attempts"]] == [1, 2]
    assert [messages(attempt) for attempt in flaky["attempts"]] == [
        ["hi 0 (attempt 1)"],
        ["hi 0 (attempt 2)"],
    ]
    assert [attempt["truncated"] for attempt in flaky["attempts"]] == [False, False]
    assert [attempt["attempt"] for attempt in second["attempts"]] == [2]


async def test_an_attempts_log_is_bounded(database_url: str) -> None:
    settings = api_settings(database_url, max_task_log_bytes=2048)
    async with serve(settings) as client:
        await register(client, CHATTY_YAML)
        run = (await client.post("/flows/Chatty/execute", json={})).json()
        logs = await logs_of(client, run["run_id"], "chatty")

    (attempt,) = logs["attempts"]
    assert attempt["truncated"] is True
    kept = messages(attempt)
    assert 10 < len(kept) < 1000
    assert "MAX_TASK_LOG_BYTES" in kept[-1]
    assert sum(len(message) for message in kept) < 2048


async def test_logs_of_an_unknown_step_or_run_are_404(client: httpx.AsyncClient) -> None:
    await register(client, LOGGED_YAML)
    run = (await client.post("/flows/Logged/execute", json={})).json()

    step = await client.get(f"/runs/{run['run_id']}/steps/nowhere/logs")
    element = await client.get(f"/runs/{run['run_id']}/steps/say/logs", params={"task_index": 3})
    unknown = await client.get("/runs/00000000-0000-0000-0000-000000000000/steps/say/logs")

    assert (step.status_code, element.status_code, unknown.status_code) == (404, 404, 404)

"""Priority and a flow's `concurrency:` limit over HTTP: shown on the run, bounded, and kept
by the embedded worker and by /execute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from app.domain.concurrency import MAX_CONCURRENCY_KEY_LENGTH, MAX_PRIORITY, MIN_PRIORITY
from tests.api.flows import GREET_YAML
from tests.api.support import poll_run, register

# One run of a tenant at a time; each run waits until its tenant's marker file exists.
GATE_YAML = """\
flow: Gate
inputs:
  - {name: tenant, type: string, required: true}
  - {name: directory, type: string, required: true}
concurrency: {limit: 1, key: "${inputs.tenant}"}
steps:
  - task: WaitForMarker
    id: wait
    inputs: {directory: "${inputs.directory}", marker: "open-${inputs.tenant}"}
"""


async def start(client: httpx.AsyncClient, flow: str, body: dict[str, Any]) -> str:
    response = await client.post(f"/flows/{flow}/runs", json=body)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def gate(tenant: str, directory: Path) -> dict[str, Any]:
    return {"inputs": {"tenant": tenant, "directory": str(directory)}}


async def status_of(client: httpx.AsyncClient, run_id: str) -> str:
    status: str = (await client.get(f"/runs/{run_id}")).json()["status"]
    return status


async def test_a_run_shows_the_priority_it_was_started_with(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)

    run_id = await start(client, "Greet", {"inputs": {"name": "Ada"}, "priority": 7})
    run = await poll_run(client, run_id)

    assert (run["priority"], run["concurrency_key"], run["concurrency_limit"]) == (7, None, None)


async def test_run_lists_show_the_priority(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)
    await poll_run(
        client, await start(client, "Greet", {"inputs": {"name": "Ada"}, "priority": -3})
    )

    (listed,) = (await client.get("/runs")).json()["items"]

    assert listed["priority"] == -3


async def test_a_priority_out_of_bounds_is_refused(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)

    for priority in (MIN_PRIORITY - 1, MAX_PRIORITY + 1):
        body = {"inputs": {"name": "Ada"}, "priority": priority}
        started = await client.post("/flows/Greet/runs", json=body)
        executed = await client.post("/flows/Greet/execute", json=body)

        for response in (started, executed):
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["body", "priority"]


async def test_a_key_waits_for_its_running_run_while_other_keys_run(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register(client, GATE_YAML)
    first = await start(client, "Gate", gate("acme", tmp_path))
    second = await start(client, "Gate", gate("acme", tmp_path))
    other = await start(client, "Gate", gate("beta", tmp_path))

    await poll_run(client, other, until=("running",))
    # The claim that took `other` met `second` first (older) and left it: acme is full.
    assert await status_of(client, second) == "queued"
    assert await status_of(client, first) == "running"
    (tmp_path / "open-acme").touch()
    (tmp_path / "open-beta").touch()

    finished = [await poll_run(client, run_id) for run_id in (first, second, other)]
    assert [run["status"] for run in finished] == ["completed"] * 3
    assert finished[1]["started_at"] >= finished[0]["finished_at"]
    assert (finished[1]["concurrency_key"], finished[1]["concurrency_limit"]) == ("acme", 1)


async def test_execute_queues_a_run_whose_key_is_full_and_waits_for_it(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register(client, GATE_YAML)
    running = await start(client, "Gate", gate("acme", tmp_path))
    await poll_run(client, running, until=("running",))

    waited = await client.post("/flows/Gate/execute", json={**gate("acme", tmp_path), "wait": 0.3})
    assert waited.status_code == 202
    run_id = waited.json()["run_id"]
    assert await status_of(client, run_id) == "queued"
    (tmp_path / "open-acme").touch()

    assert (await poll_run(client, run_id))["status"] == "completed"


async def test_execute_runs_a_limited_flow_with_a_free_slot_and_answers_it(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register(client, GATE_YAML)
    (tmp_path / "open-acme").touch()

    response = await client.post("/flows/Gate/execute", json=gate("acme", tmp_path))

    assert response.status_code == 200
    assert response.json()["status"] == "completed"


async def test_a_key_too_long_is_refused_before_any_run(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register(client, GATE_YAML)
    body = gate("x" * (MAX_CONCURRENCY_KEY_LENGTH + 1), tmp_path)

    response = await client.post("/flows/Gate/runs", json=body)

    assert response.status_code == 422
    assert "concurrency.key" in response.json()["detail"][0]["msg"]
    assert (await client.get("/runs")).json()["items"] == []

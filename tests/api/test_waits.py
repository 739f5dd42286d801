"""Durable sleep and signals over HTTP (DESIGN.md section 9), on SQLite and PostgreSQL: a run
that only waits parks without a worker and is resumed by the embedded worker when its time or
its signal comes."""

from __future__ import annotations

import httpx
import pytest

from app.settings import Settings
from tests.api.support import api_settings, poll_run, register, serve, step_status

NAP_YAML = """\
flow: Nap
steps:
  - set: {id: before, values: {n: 1}}
  - sleep: {id: nap, seconds: 0.5}
  - set: {id: after, values: {n: "${before.n}"}}
outputs: {n: "${after.n}"}
"""

APPROVAL_YAML = """\
flow: Approval
inputs:
  - {name: pause, type: number, default: 0}
steps:
  - sleep: {id: first, seconds: "${inputs.pause}"}
  - wait_for: {id: approval, signal: approve, timeout: 600}
outputs:
  approved: ${approval.payload.approved}
  timed_out: ${approval.timed_out}
"""

LATE_YAML = """\
flow: Late
steps:
  - wait_for: {id: approval, signal: approve, timeout: 0.3}
outputs: {payload: "${approval.payload}", timed_out: "${approval.timed_out}"}
"""


async def waiting(client: httpx.AsyncClient, run_id: str, step: str) -> None:
    run = await poll_run(client, run_id, until=("running",), step=step)
    assert step_status(run, step) == "waiting"


async def test_execute_waits_through_a_durable_sleep(client: httpx.AsyncClient) -> None:
    await register(client, NAP_YAML)

    answer = await client.post("/flows/Nap/execute", json={"wait": 10})

    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["outputs"]) == ("completed", {"n": 1})


async def test_a_signal_completes_the_step_waiting_for_it_with_its_payload(
    client: httpx.AsyncClient,
) -> None:
    await register(client, APPROVAL_YAML)
    run_id = (await client.post("/flows/Approval/runs", json={})).json()["run_id"]
    await waiting(client, run_id, "approval")

    sent = await client.post(f"/runs/{run_id}/signals/approve", json={"approved": True})

    assert sent.status_code == 202, sent.text
    assert sent.json()["run_id"] == run_id
    assert sent.json()["name"] == "approve"
    run = await poll_run(client, run_id)
    assert (run["status"], run["outputs"]) == ("completed", {"approved": True, "timed_out": False})


async def test_a_signal_sent_before_its_step_is_reached_is_kept_for_it(
    client: httpx.AsyncClient,
) -> None:
    await register(client, APPROVAL_YAML)
    started = await client.post("/flows/Approval/runs", json={"inputs": {"pause": 0.5}})
    run_id = started.json()["run_id"]

    sent = await client.post(f"/runs/{run_id}/signals/approve", json={"approved": False})

    assert sent.status_code == 202
    run = await poll_run(client, run_id)
    assert run["outputs"] == {"approved": False, "timed_out": False}
    assert step_status(run, "first") == "completed"


async def test_a_wait_for_past_its_timeout_completes_timed_out(client: httpx.AsyncClient) -> None:
    await register(client, LATE_YAML)

    answer = await client.post("/flows/Late/execute", json={"wait": 10})

    assert answer.json()["status"] == "completed"
    assert answer.json()["outputs"] == {"payload": None, "timed_out": True}


async def test_cancelling_a_parked_run_cancels_its_waiting_step(client: httpx.AsyncClient) -> None:
    await register(client, APPROVAL_YAML)
    run_id = (await client.post("/flows/Approval/runs", json={})).json()["run_id"]
    await waiting(client, run_id, "approval")

    cancelled = await client.post(f"/runs/{run_id}/cancel")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert step_status(cancelled.json(), "approval") == "cancelled"
    late = await client.post(f"/runs/{run_id}/signals/approve", json=True)
    assert late.status_code == 409
    assert late.json()["detail"] == f"run {run_id} is cancelled: it takes no more signals"


async def test_a_signal_to_an_unknown_run_is_404(client: httpx.AsyncClient) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"

    answer = await client.post(f"/runs/{unknown}/signals/approve", json=None)

    assert answer.status_code == 404
    assert answer.json()["detail"] == f"no run has the id {unknown!r}"


@pytest.mark.parametrize("name", ["with%20space", "x" * 129, "a.b%2Fc"])
async def test_a_signal_name_a_wait_for_cannot_carry_is_422(
    client: httpx.AsyncClient, name: str
) -> None:
    await register(client, APPROVAL_YAML)
    run_id = (await client.post("/flows/Approval/runs", json={})).json()["run_id"]

    answer = await client.post(f"/runs/{run_id}/signals/{name}", json=True)

    assert answer.status_code in (404, 422)  # a `/` splits the path: no such route
    if answer.status_code == 422:
        assert answer.json()["detail"][0]["loc"] == ["path", "name"]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return api_settings(database_url, max_signals_per_run=2, max_signal_payload_bytes=1024)


async def test_a_payload_past_max_signal_payload_bytes_is_413(client: httpx.AsyncClient) -> None:
    await register(client, APPROVAL_YAML)
    run_id = (await client.post("/flows/Approval/runs", json={})).json()["run_id"]

    answer = await client.post(f"/runs/{run_id}/signals/approve", json={"text": "x" * 2000})

    assert answer.status_code == 413
    assert "MAX_SIGNAL_PAYLOAD_BYTES allows 1024" in answer.json()["detail"]


async def test_signals_past_max_signals_per_run_are_409(client: httpx.AsyncClient) -> None:
    await register(client, APPROVAL_YAML)
    run_id = (await client.post("/flows/Approval/runs", json={"inputs": {"pause": 60}})).json()[
        "run_id"
    ]
    for _ in range(2):
        assert (await client.post(f"/runs/{run_id}/signals/other", json=1)).status_code == 202

    refused = await client.post(f"/runs/{run_id}/signals/other", json=1)

    assert refused.status_code == 409
    assert "(setting MAX_SIGNALS_PER_RUN)" in refused.json()["detail"]
    await client.post(f"/runs/{run_id}/cancel")


async def test_a_sleeping_run_wakes_after_its_service_restarted(database_url: str) -> None:
    """The process that parked it stopped: the next one on the store wakes it on time."""
    settings = api_settings(database_url)
    async with serve(settings) as client:
        await register(client, NAP_YAML)
        run_id = (await client.post("/flows/Nap/runs", json={})).json()["run_id"]
        await waiting(client, run_id, "nap")

    async with serve(settings) as client:
        run = await poll_run(client, run_id)

    assert (run["status"], run["outputs"]) == ("completed", {"n": 1})
    assert [step_status(run, step) for step in ("before", "nap", "after")] == ["completed"] * 3

"""A run's inputs over HTTP: optional inputs are null and valid wherever the run executes;
bad inputs are refused with 422 before any run exists."""

from __future__ import annotations

import httpx

from tests.api.support import poll_run, register, snapshot

OPTIONAL = """
flow: Optional
inputs:
  - {name: settings, type: object}
  - {name: limit, type: integer}
  - {name: id, type: integer, required: true}
steps:
  - set: {id: echo, values: {settings: "${inputs.settings}", limit: "${inputs.limit}"}}
outputs: {settings: "${echo.settings}", limit: "${echo.limit}"}
"""
NULLS = {"settings": None, "limit": None}


async def test_optional_inputs_left_out_or_null_run_to_completion(
    client: httpx.AsyncClient,
) -> None:
    await register(client, OPTIONAL)

    executed = await client.post("/flows/Optional/execute", json={"inputs": {"id": 1}})
    sent_null = await client.post(
        "/flows/Optional/execute", json={"inputs": {"id": 1, "settings": None, "limit": None}}
    )
    queued = await client.post("/flows/Optional/runs", json={"inputs": {"id": 1}})
    claimed = await poll_run(client, queued.json()["run_id"])

    for answer in (executed.json(), sent_null.json(), claimed):
        assert answer["status"] == "completed", answer
        assert answer["outputs"] == NULLS
    assert claimed["inputs"] == {**NULLS, "id": 1}


async def test_a_required_input_sent_as_null_is_422_and_no_run_exists(
    client: httpx.AsyncClient,
) -> None:
    await register(client, OPTIONAL)
    before = await snapshot(client)

    refused = await client.post("/flows/Optional/runs", json={"inputs": {"id": None}})

    assert refused.status_code == 422
    assert refused.json()["detail"] == [
        {
            "loc": ["body", "inputs", "id"],
            "msg": "input 'id' must be an integer, got None",
            "type": "type_error",
        }
    ]
    assert await snapshot(client) == before

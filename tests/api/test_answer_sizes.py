"""Answers stay small whatever runs hold: values past MAX_ANSWER_VALUE_BYTES, or past what is
left of MAX_ANSWER_BYTES, become `{"truncated": true, "bytes": N, "href": ...}` markers, and
the href answers the value whole."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.api.support import TASK_MODULES, api_settings, register, serve

KIB = 1024

BIG_STEP = """
flow: BigStep
inputs: {size: integer}
steps:
  - task: Text
    id: big
    inputs: {size: "${inputs.size}"}
  - set: {id: small, values: {n: 1}}
outputs: {text: "${big.text}", n: "${small.n}"}
"""
WIDE = """
flow: Wide
steps:
  - task: Text
    id: each
    for_each: "${[900] * 40}"
    inputs: {size: "${item}"}
"""


@pytest.fixture
def settings(database_url: str) -> Settings:
    return api_settings(
        database_url,
        task_modules=[*TASK_MODULES, "tests.store.value_tasks"],
        max_answer_value_bytes=2 * KIB,
        max_answer_bytes=8 * KIB,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings) as client:
        yield client


def marker(size: int, href: str) -> dict[str, Any]:
    return {"truncated": True, "bytes": size, "href": href}


async def test_a_large_value_is_a_marker_beside_the_small_ones(
    client: httpx.AsyncClient,
) -> None:
    await register(client, BIG_STEP)

    executed = await client.post("/flows/BigStep/execute", json={"inputs": {"size": 3000}})
    run_id = executed.json()["run_id"]
    run = (await client.get(f"/runs/{run_id}")).json()

    text_marker = marker(3002, f"/runs/{run_id}/outputs")  # "xxx...": 3000 + 2 quotes
    assert executed.json()["outputs"] == {"text": text_marker, "n": 1}
    assert run["outputs"] == {"text": text_marker, "n": 1}
    assert run["inputs"] == {"size": 3000}
    big, small = run["steps"]
    assert big["outputs"] == {
        "text": marker(3002, f"/runs/{run_id}/steps/big/outputs?task_index=0")
    }
    assert small["outputs"] == {"n": 1}


async def test_the_href_answers_the_value_whole(client: httpx.AsyncClient) -> None:
    await register(client, BIG_STEP)
    run_id = (await client.post("/flows/BigStep/execute", json={"inputs": {"size": 3000}})).json()[
        "run_id"
    ]
    run = (await client.get(f"/runs/{run_id}")).json()

    outputs = await client.get(run["outputs"]["text"]["href"])
    step = await client.get(run["steps"][0]["outputs"]["text"]["href"])
    inputs = await client.get(f"/runs/{run_id}/inputs")

    assert outputs.status_code == 200
    assert outputs.headers["content-type"] == "application/json"
    assert outputs.json() == {"text": "x" * 3000, "n": 1}
    assert step.json() == {"text": "x" * 3000}
    assert inputs.json() == {"size": 3000}


async def test_values_past_the_answers_budget_are_markers(client: httpx.AsyncClient) -> None:
    await register(client, WIDE)
    run_id = (await client.post("/flows/Wide/execute", json={})).json()["run_id"]

    response = await client.get(f"/runs/{run_id}")

    steps = response.json()["steps"]
    whole = [step for step in steps if "truncated" not in step["outputs"]["text"]]
    assert len(steps) == 40
    assert len(whole) == 8  # 8 KiB of answer: eight outputs of 911 bytes, then markers
    assert steps[8]["outputs"] == {
        "text": marker(902, f"/runs/{run_id}/steps/each/outputs?task_index=8")
    }
    assert len(response.content) < 8 * KIB + 40 * 400  # the values' budget, and each step's frame


async def test_a_listing_shares_its_budget_among_its_runs(client: httpx.AsyncClient) -> None:
    await register(client, BIG_STEP)
    for size in (10, 1500, 40_000):
        await client.post("/flows/BigStep/execute", json={"inputs": {"size": size}})

    listing = await client.get("/runs", params={"limit": 4})  # 1 KiB for each value

    large, medium, small = listing.json()["items"]
    assert small["outputs"] == {"text": "x" * 10, "n": 1}
    href = f"/runs/{medium['run_id']}/outputs"
    assert medium["outputs"] == {"text": marker(1502, href), "n": 1}
    # Far past its share, a value is not even read from the store: measured there.
    assert large["outputs"]["truncated"] is True
    assert large["outputs"]["bytes"] >= 40_000
    assert large["outputs"]["href"] == f"/runs/{large['run_id']}/outputs"
    whole = await client.get(large["outputs"]["href"])
    assert whole.json() == {"text": "x" * 40_000, "n": 1}


async def test_a_listing_answer_stays_within_its_budget(client: httpx.AsyncClient) -> None:
    await register(client, BIG_STEP)
    for _ in range(6):
        await client.post("/flows/BigStep/execute", json={"inputs": {"size": 50_000}})

    listing = await client.get("/runs", params={"limit": 200})

    assert listing.status_code == 200
    assert len(listing.json()["items"]) == 6
    assert len(listing.content) < 8 * KIB


async def test_the_whole_value_routes_answer_404_for_what_does_not_exist(
    client: httpx.AsyncClient,
) -> None:
    await register(client, BIG_STEP)
    run_id = (await client.post("/flows/BigStep/execute", json={"inputs": {"size": 1}})).json()[
        "run_id"
    ]
    unknown = "00000000-0000-0000-0000-000000000000"

    no_step = await client.get(f"/runs/{run_id}/steps/nope/outputs")
    no_element = await client.get(f"/runs/{run_id}/steps/big/outputs", params={"task_index": 3})
    no_run = await client.get(f"/runs/{unknown}/outputs")
    bad_step = await client.get(f"/runs/{run_id}/steps/no-such!/outputs")

    assert no_step.status_code == 404
    assert no_step.json() == {"detail": f"run {run_id} has no step 'nope' with task_index 0"}
    assert no_element.status_code == 404
    assert no_run.status_code == 404
    assert (await client.get(f"/runs/{unknown}/steps/big/outputs")).status_code == 404
    assert bad_step.status_code == 422


async def test_a_small_run_is_answered_whole(client: httpx.AsyncClient) -> None:
    await register(client, BIG_STEP)

    executed = await client.post("/flows/BigStep/execute", json={"inputs": {"size": 5}})
    run = (await client.get(f"/runs/{executed.json()['run_id']}")).json()

    assert executed.json()["outputs"] == {"text": "xxxxx", "n": 1}
    assert run["outputs"] == {"text": "xxxxx", "n": 1}
    assert [step["outputs"] for step in run["steps"]] == [{"text": "xxxxx"}, {"n": 1}]
    assert "truncated" not in json.dumps(run)

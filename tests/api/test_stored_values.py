"""Values that cannot be stored, over HTTP: a run fails cleanly with the step and the value's
path, and no listing or reading of runs ever answers 500, whatever a run holds."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.api.support import JSON, TASK_MODULES, api_settings, register, serve
from tests.databases import fresh_store_database
from tests.store.value_tasks import UNSTORABLE

VALUE_TASKS = [*TASK_MODULES, "tests.store.value_tasks"]

# The case: a `set` step whose value is the expression ${'\ud800'}.
SURROGATE_FLOW = {
    "flow": "Surrogate",
    "steps": [{"set": {"id": "s", "values": {"v": "${'\\ud800'}"}}}],
    "outputs": {"v": "${s.v}"},
}
UNSTORABLE_FLOW = """
flow: Unstorable
inputs: {kind: string}
steps:
  - task: Unstorable
    id: fetch
    inputs: {kind: "${inputs.kind}"}
"""
# Everything else a run may be asked to keep: unstorable run outputs, error messages holding
# any character, outputs past their limits.
HOSTILE_FLOWS = [
    """
flow: BadOutputs
steps:
  - set: {id: s, values: {v: 1}}
outputs: {bad: "${float('nan')}", key: "${ {1: 2} }"}
""",
    """
flow: BadMessage
steps:
  - task: Raise
    id: boom
    inputs: {message: "${'lone \\\\ud800 NUL \\\\x00 ' * 10000}"}
""",
    """
flow: BigStep
steps:
  - task: Text
    id: big
    inputs: {size: 2000000}
""",
    """
flow: BigRun
steps:
  - task: Text
    id: each
    for_each: "${[900000] * 20}"
    inputs: {size: "${item}"}
""",
]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return api_settings(database_url, task_modules=VALUE_TASKS)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings, raise_app_exceptions=False) as client:
        yield client


async def assert_every_run_answers(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """GET /runs and GET /runs/{id} of each run: 200 and valid JSON; the runs."""
    listing = await client.get("/runs", params={"limit": 200})
    assert listing.status_code == 200, listing.text
    items: list[dict[str, Any]] = listing.json()["items"]
    for item in items:
        detail = await client.get(f"/runs/{item['run_id']}")
        assert detail.status_code == 200, detail.text
        json.loads(detail.content)
    return items


async def test_a_lone_surrogate_fails_the_step_and_leaves_listings_readable(
    client: httpx.AsyncClient,
) -> None:
    await register(client, json.dumps(SURROGATE_FLOW), JSON)

    response = await client.post("/flows/Surrogate/execute", json={})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "failed"
    assert answer["error"] == {
        "step": "s",
        "type": "UnstorableValueError",
        "message": "step 's' returned a value that cannot be stored: outputs.v: text may not "
        "hold NUL (\\u0000) or lone surrogates (\\ud800-\\udfff)",
    }
    assert [item["run_id"] for item in await assert_every_run_answers(client)] == [answer["run_id"]]


@pytest.mark.parametrize("kind", sorted(UNSTORABLE))
async def test_unstorable_outputs_fail_with_the_step_and_the_path(
    client: httpx.AsyncClient, kind: str
) -> None:
    await register(client, UNSTORABLE_FLOW)

    response = await client.post("/flows/Unstorable/execute", json={"inputs": {"kind": kind}})

    assert response.status_code == 200, response.text
    error = response.json()["error"]
    assert (error["step"], error["type"]) == ("fetch", "UnstorableValueError")
    assert "outputs.rows[3].name" in error["message"]
    run = (await client.get(f"/runs/{response.json()['run_id']}")).json()
    assert run["error"] == error
    assert run["steps"][0]["outputs"] is None


async def test_no_listing_answers_500_whatever_runs_hold(client: httpx.AsyncClient) -> None:
    await register(client, json.dumps(SURROGATE_FLOW), JSON)
    await register(client, UNSTORABLE_FLOW)
    started = [await client.post("/flows/Surrogate/execute", json={})]
    for kind in sorted(UNSTORABLE):
        inputs = {"inputs": {"kind": kind}}
        started.append(await client.post("/flows/Unstorable/execute", json=inputs))
    for source in HOSTILE_FLOWS:
        name = (await register(client, source))["name"]
        started.append(await client.post(f"/flows/{name}/execute", json={}))

    assert [response.status_code for response in started] == [200] * len(started)
    assert {response.json()["status"] for response in started} == {"failed"}
    items = await assert_every_run_answers(client)
    assert len(items) == len(started)


async def test_a_definition_no_store_can_hold_is_refused_at_its_place(
    client: httpx.AsyncClient,
) -> None:
    flow = """
flow: Infinite
inputs:
  - {name: x, type: array, default: [.inf]}
steps:
  - set: {id: s, values: {v: "${inputs.x}"}}
"""
    response = await client.post("/flows", content=flow, headers={"content-type": "text/yaml"})

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["inputs", 0, "default", 0],
            "msg": "Infinity is not a JSON number",
            "type": "unstorable_value",
            "line": 4,
            "column": 38,
        }
    ]
    assert (await client.get("/flows")).json() == []


@pytest.fixture
async def sqlite_file(tmp_path: Path) -> AsyncIterator[Path]:
    async with fresh_store_database("sqlite", tmp_path) as url:
        yield Path(url.removeprefix("sqlite+aiosqlite:///"))


async def test_runs_written_before_values_were_checked_are_answered_cleaned(
    sqlite_file: Path,
) -> None:
    """SQLite kept what JSON text can spell: lone surrogates as escapes, NaN as a token."""
    async with serve(api_settings(f"sqlite+aiosqlite:///{sqlite_file}")) as client:
        await register(client, "flow: Old\nsteps:\n  - set: {id: s, values: {v: 1}}\n")
        run_id = (await client.post("/flows/Old/execute", json={})).json()["run_id"]
        with sqlite3.connect(sqlite_file) as database:
            database.execute(
                "UPDATE flow_runs SET inputs = ?, outputs = ?, error = ? WHERE id = ?",
                (
                    '{"n": NaN}',
                    '{"v": "\\ud800", "w": [Infinity, -Infinity]}',
                    '{"step": "s", "type": "E", "message": "bad \\udfff"}',
                    run_id,
                ),
            )
            database.execute(
                "UPDATE task_runs SET outputs = ? WHERE run_id = ?", ('{"v": "\\udc00"}', run_id)
            )

        listing = await client.get("/runs")
        detail = await client.get(f"/runs/{run_id}")
        outputs = await client.get(f"/runs/{run_id}/outputs")
        step = await client.get(f"/runs/{run_id}/steps/s/outputs")

        assert [listing.status_code, detail.status_code, outputs.status_code] == [200] * 3
        (item,) = listing.json()["items"]
        assert item["inputs"] == {"n": None}
        assert item["outputs"] == {"v": "\ufffd", "w": [None, None]}
        assert item["error"]["message"] == "bad \ufffd"
        assert detail.json()["outputs"] == item["outputs"]
        assert detail.json()["steps"][0]["outputs"] == {"v": "\ufffd"}
        assert outputs.json() == item["outputs"]
        assert step.json() == {"v": "\ufffd"}

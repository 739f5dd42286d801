"""Sub-flows over HTTP (DESIGN.md section 9), on SQLite and PostgreSQL: a step `- flow: Name`
starts a child run, the parent waits parked and ends with the child's outputs or error."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests import polling
from tests.api.flows import RESUMABLE_YAML
from tests.api.support import api_settings, poll_run, register, step_status
from tests.api.tasks import executions

CHILD_YAML = """\
flow: Child
inputs:
  - {name: name, type: string, required: true}
steps:
  - set: {id: greet, values: {text: "Hello, ${inputs.name}!"}}
outputs: {text: "${greet.text}"}
"""

PARENT_YAML = """\
flow: Parent
steps:
  - flow: Child
    id: child
    inputs: {name: Ada}
  - set: {id: after, values: {text: "${upper(child.text)}"}}
outputs: {text: "${after.text}"}
"""

WAITING_CHILD_YAML = """\
flow: WaitingChild
steps:
  - wait_for: {id: approval, signal: approve}
"""

WAITING_PARENT_YAML = """\
flow: WaitingParent
steps:
  - flow: WaitingChild
    id: child
"""

RETRIED_PARENT_YAML = """\
flow: RetriedParent
inputs:
  - {name: directory, type: string, required: true}
steps:
  - flow: Resumable
    id: child
    inputs: {directory: "${inputs.directory}"}
outputs: {second: "${child.second}"}
"""

RECURSE_YAML = """\
flow: Recurse
steps:
  - flow: Recurse
    id: deeper
"""


async def children_of(client: httpx.AsyncClient, run_id: str) -> list[dict[str, str]]:
    run = (await client.get(f"/runs/{run_id}")).json()
    return list(run["children"])


async def test_a_parent_ends_with_its_child_runs_outputs(client: httpx.AsyncClient) -> None:
    await register(client, CHILD_YAML)
    await register(client, PARENT_YAML)

    answer = await client.post("/flows/Parent/execute", json={"wait": 10})

    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["outputs"]) == (
        "completed",
        {"text": "HELLO, ADA!"},
    )
    parent_id = answer.json()["run_id"]
    (child,) = await children_of(client, parent_id)
    assert (child["step_id"], child["status"]) == ("child", "completed")
    read = (await client.get(f"/runs/{child['run_id']}")).json()
    assert (read["flow"], read["parent_run_id"], read["parent_step_id"]) == (
        "Child",
        parent_id,
        "child",
    )
    assert read["outputs"] == {"text": "Hello, Ada!"}
    listed = (await client.get("/runs", params={"parent": parent_id})).json()["items"]
    assert [run["run_id"] for run in listed] == [child["run_id"]]


async def test_a_failed_child_fails_its_parents_step_with_its_error(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register(client, RESUMABLE_YAML)
    await register(client, RETRIED_PARENT_YAML)

    answer = await client.post(
        "/flows/RetriedParent/execute", json={"inputs": {"directory": str(tmp_path)}, "wait": 10}
    )

    assert answer.json()["status"] == "failed"
    error = answer.json()["error"]
    assert (error["step"], error["type"]) == ("child", "ChildRunError")
    assert error["message"].endswith("failed: the marker 'ready' is missing")


async def test_retrying_the_parent_resumes_its_failed_child_not_a_new_one(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register(client, RESUMABLE_YAML)
    await register(client, RETRIED_PARENT_YAML)
    inputs = {"directory": str(tmp_path)}
    failed = await client.post("/flows/RetriedParent/execute", json={"inputs": inputs, "wait": 10})
    parent_id = failed.json()["run_id"]
    (child,) = await children_of(client, parent_id)

    (tmp_path / "ready").touch()
    assert (await client.post(f"/runs/{parent_id}/retry")).status_code == 202

    run = await poll_run(client, parent_id)
    assert (run["status"], run["outputs"]) == ("completed", {"second": 2})
    assert await children_of(client, parent_id) == [{**child, "status": "completed"}]
    assert executions(tmp_path, "first") == 1  # the child resumed: its first step kept


async def test_cancelling_a_parent_cancels_its_child(client: httpx.AsyncClient) -> None:
    await register(client, WAITING_CHILD_YAML)
    await register(client, WAITING_PARENT_YAML)
    parent_id = (await client.post("/flows/WaitingParent/runs", json={})).json()["run_id"]
    run = await poll_run(client, parent_id, until=("running",), step="child")
    assert step_status(run, "child") == "waiting"

    children: list[dict[str, str]] = []

    async def started() -> bool:  # the parent's step waits: its child exists, or is coming
        children.extend(await children_of(client, parent_id))
        return bool(children)

    await polling.until(started)
    child_id = children[0]["run_id"]

    cancelled = await client.post(f"/runs/{parent_id}/cancel")

    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["children"] == [
        {"run_id": child_id, "step_id": "child", "status": "cancelled"}
    ]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return api_settings(database_url, max_subflow_depth=3)


async def test_a_flow_calling_itself_stops_at_max_subflow_depth(
    client: httpx.AsyncClient,
) -> None:
    await register(client, RECURSE_YAML)

    answer = await client.post("/flows/Recurse/execute", json={"wait": 20})

    assert answer.json()["status"] == "failed"
    assert answer.json()["error"]["type"] == "ChildRunError"
    assert "MAX_SUBFLOW_DEPTH allows 3" in answer.json()["error"]["message"]
    depth = 0
    run_id = answer.json()["run_id"]
    while children := await children_of(client, run_id):
        (child,) = children
        run_id = child["run_id"]
        depth += 1
    assert depth == 3


async def test_a_child_of_an_unknown_flow_fails_the_step_saying_so(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "flow: Orphan\nsteps:\n  - flow: Nowhere\n    id: child\n")

    answer = await client.post("/flows/Orphan/execute", json={"wait": 10})

    assert answer.json()["status"] == "failed"
    assert answer.json()["error"]["step"] == "child"
    assert "Nowhere" in answer.json()["error"]["message"]


async def test_deleting_a_childs_flow_fails_the_parent_waiting_for_it(
    client: httpx.AsyncClient,
) -> None:
    await register(client, WAITING_CHILD_YAML)
    await register(client, WAITING_PARENT_YAML)
    parent_id = (await client.post("/flows/WaitingParent/runs", json={})).json()["run_id"]
    await poll_run(client, parent_id, until=("running",), step="child")

    assert (await client.delete("/flows/WaitingChild")).status_code == 204

    run = await poll_run(client, parent_id)
    assert run["status"] == "failed"
    assert (run["error"]["step"], run["error"]["type"]) == ("child", "UnknownFlowError")
    assert "'WaitingChild'" in run["error"]["message"]

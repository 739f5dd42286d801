"""`POST /flow/run`: the Flow Manager seed's sample and its failure routing."""

from __future__ import annotations

import copy

import httpx

from app.schemas.flow_manager import SAMPLE_REQUEST
from tests.api.flow_manager_sample import SAMPLE


def test_the_documented_example_is_the_seeds_sample_request() -> None:
    assert SAMPLE_REQUEST == SAMPLE


async def test_the_sample_runs_fetch_process_store(client: httpx.AsyncClient) -> None:
    response = await client.post("/flow/run", json=SAMPLE)

    assert response.status_code == 200
    answer = response.json()
    assert answer == {
        "flow_run_id": answer["flow_run_id"],
        "status": "completed",
        "executed_tasks": ["task1", "task2", "task3"],
        "final_output": {"stored": True},
    }
    run = (await client.get(f"/runs/{answer['flow_run_id']}")).json()
    assert (run["flow"], run["status"]) == ("flow123", "completed")


async def test_the_graph_is_registered_once_under_its_id(client: httpx.AsyncClient) -> None:
    await client.post("/flow/run", json=SAMPLE)
    await client.post("/flow/run", json=SAMPLE)

    versions = (await client.get("/flows/flow123/versions")).json()

    assert [version["version"] for version in versions] == [1]
    assert len((await client.get("/runs", params={"flow": "flow123"})).json()["items"]) == 2


async def test_a_failure_routed_to_end_fails_the_run(client: httpx.AsyncClient) -> None:
    response = await client.post("/flow/run", json=SAMPLE | {"inputs": {"source_down": True}})

    assert response.status_code == 200
    answer = response.json()
    assert (answer["status"], answer["executed_tasks"]) == ("failed", ["task1"])
    run = (await client.get(f"/runs/{answer['flow_run_id']}")).json()
    assert run["error"] == {
        "step": "task1",
        "type": "TaskError",
        "message": "the data source is unavailable",
    }


async def test_inputs_reach_the_tasks(client: httpx.AsyncClient) -> None:
    graph = copy.deepcopy(SAMPLE["flow"])
    graph["conditions"] = graph["conditions"][:1]  # stop after task2

    response = await client.post("/flow/run", json={"flow": graph, "inputs": {"records": [1, 4]}})

    assert response.json()["final_output"] == {"records": [2, 8], "total": 10}


async def test_a_flow_that_is_not_a_condition_graph_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/flow/run", json={"flow": {"flow": "X", "steps": []}})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "flow"]
    assert (await client.get("/flows")).json() == []


async def test_an_invalid_graph_is_422_and_nothing_is_stored(client: httpx.AsyncClient) -> None:
    graph = copy.deepcopy(SAMPLE["flow"])
    graph["start_task"] = "task0"

    response = await client.post("/flow/run", json={"flow": graph})

    assert response.status_code == 422
    (problem,) = [p for p in response.json()["detail"] if "task0" in p["msg"]]
    assert problem["loc"] == ["body", "flow", "start_task"]  # into the request, not a re-dump
    assert "line" not in problem
    assert (await client.get("/flows")).json() == []
    assert (await client.get("/runs")).json()["items"] == []

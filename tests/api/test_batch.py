"""Starting many runs in one request (`POST /flows/{name}/runs` with `runs`), on SQLite and
PostgreSQL: one transaction, every run or none, each run's problems at its place."""

from __future__ import annotations

import httpx
import pytest

from app.settings import Settings
from tests.api.flows import GREET_YAML
from tests.api.support import api_settings, poll_run, register


@pytest.fixture
def settings(database_url: str) -> Settings:
    return api_settings(database_url, max_batch_runs=3)


async def runs_of_greet(client: httpx.AsyncClient) -> list[str]:
    listed = (await client.get("/runs", params={"flow": "Greet"})).json()["items"]
    return [run["run_id"] for run in listed]


async def test_a_batch_starts_every_run_and_answers_their_ids_in_order(
    client: httpx.AsyncClient,
) -> None:
    await register(client, GREET_YAML)
    names = ["Ada", "Grace", "Edsger"]

    answer = await client.post(
        "/flows/Greet/runs", json={"runs": [{"inputs": {"name": name}} for name in names]}
    )

    assert answer.status_code == 202, answer.text
    started = answer.json()["runs"]
    assert [run["status"] for run in started] == ["queued"] * 3
    for name, run in zip(names, started, strict=True):
        finished = await poll_run(client, run["run_id"])
        assert finished["outputs"] == {"text": f"Hello, {name}!", "times": 1}
    assert sorted(await runs_of_greet(client)) == sorted(run["run_id"] for run in started)


async def test_a_bad_run_in_a_batch_is_422_at_its_place_and_starts_nothing(
    client: httpx.AsyncClient,
) -> None:
    await register(client, GREET_YAML)

    answer = await client.post(
        "/flows/Greet/runs",
        json={"runs": [{"inputs": {"name": "Ada"}}, {"inputs": {"times": 2}}]},
    )

    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "runs", 1, "inputs", "name"]
    assert problem["msg"] == "missing required input 'name'"
    assert await runs_of_greet(client) == []


async def test_a_batch_past_max_batch_runs_is_422_and_starts_nothing(
    client: httpx.AsyncClient,
) -> None:
    await register(client, GREET_YAML)

    answer = await client.post("/flows/Greet/runs", json={"runs": [{"inputs": {"name": "x"}}] * 4})

    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "runs"]
    assert problem["msg"] == "4 runs in one batch; MAX_BATCH_RUNS allows 3"
    assert await runs_of_greet(client) == []


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"runs": []}, ["body", "runs"]),
        ({"runs": [{"inputs": {"name": "x"}, "when": 1}]}, ["body", "runs", 0, "when"]),
        ({"runs": [{"inputs": {"name": "x"}, "priority": 5000}]}, ["body", "runs", 0, "priority"]),
    ],
)
async def test_a_malformed_batch_is_422_at_its_place(
    client: httpx.AsyncClient, body: dict[str, object], loc: list[object]
) -> None:
    await register(client, GREET_YAML)

    answer = await client.post("/flows/Greet/runs", json=body)

    assert answer.status_code == 422
    assert [problem["loc"] for problem in answer.json()["detail"]] == [loc]


async def test_a_batch_takes_no_idempotency_key(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)

    answer = await client.post(
        "/flows/Greet/runs",
        json={"runs": [{"inputs": {"name": "Ada"}}]},
        headers={"Idempotency-Key": "once"},
    )

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert await runs_of_greet(client) == []


async def test_a_batch_with_a_run_of_its_own_beside_it_is_422(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)

    answer = await client.post(
        "/flows/Greet/runs", json={"inputs": {"name": "Ada"}, "runs": [{"inputs": {}}]}
    )

    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body"]
    assert "`runs` starts a batch" in problem["msg"]
    assert await runs_of_greet(client) == []

"""Forking a run from a step, and comparing two runs, over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.api.flows import GREET_YAML, RESUMABLE_YAML, SLOW_YAML
from tests.api.support import api_settings, poll_run, register, serve
from tests.api.tasks import executions

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def failed_run(client: httpx.AsyncClient, directory: Path) -> dict[str, Any]:
    """A Resumable run that failed at `second`, after `first` completed."""
    await register(client, RESUMABLE_YAML)
    inputs = {"directory": str(directory)}
    failed: dict[str, Any] = (
        await client.post("/flows/Resumable/execute", json={"inputs": inputs})
    ).json()
    assert (failed["status"], failed["error"]["step"]) == ("failed", "second")
    return failed


async def test_a_fork_runs_from_its_step_and_keeps_the_steps_before_it(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    failed = await failed_run(client, tmp_path)
    (tmp_path / "ready").touch()

    response = await client.post(f"/runs/{failed['run_id']}/fork", json={"from_step": "second"})

    assert response.status_code == 202
    fork_id = response.json()["run_id"]
    assert fork_id != failed["run_id"]
    assert response.headers["location"] == f"/runs/{fork_id}"
    fork = await poll_run(client, fork_id)
    assert fork["status"] == "completed"
    assert fork["forked_from"] == failed["run_id"]
    assert fork["outputs"] == {"second": 2}
    assert [executions(tmp_path, step) for step in ("first", "second", "third")] == [1, 2, 1]
    source = (await client.get(f"/runs/{failed['run_id']}")).json()
    assert (source["status"], source["forked_from"]) == ("failed", None)
    assert fork["steps"][0] == source["steps"][0]  # `first` as it finished in the source


async def test_a_fork_with_patched_outputs_and_new_inputs(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register(client, GREET_YAML)
    source = (
        await client.post("/flows/Greet/execute", json={"inputs": {"name": "Ada", "times": 1}})
    ).json()

    response = await client.post(
        f"/runs/{source['run_id']}/fork",
        json={
            "from_step": "shout",
            "inputs": {"name": "Ada", "times": "2"},
            "outputs": {"greet": {"text": "Hi, Bob!"}},
        },
    )

    assert response.status_code == 202
    fork = await poll_run(client, response.json()["run_id"])
    assert fork["inputs"] == {"name": "Ada", "times": 2}
    assert fork["outputs"] == {"text": "Hi, Bob!", "times": 2}
    steps = {step["step_id"]: step for step in fork["steps"]}
    assert steps["shout"]["outputs"] == {"text": "HI, BOB!"}


async def test_what_a_fork_refuses(client: httpx.AsyncClient, tmp_path: Path) -> None:
    failed = await failed_run(client, tmp_path)
    fork = f"/runs/{failed['run_id']}/fork"

    not_a_step = await client.post(fork, json={"from_step": "nope"})
    not_kept = await client.post(fork, json={"from_step": "first", "outputs": {"first": {}}})
    bad_inputs = await client.post(fork, json={"from_step": "first", "inputs": {}})
    unknown = await client.post(f"/runs/{UNKNOWN}/fork", json={"from_step": "first"})
    no_version = await client.post(fork, json={"from_step": "first", "version": 9})

    assert not_a_step.status_code == 422
    assert not_a_step.json()["detail"][0]["loc"] == ["body", "from_step"]
    assert not_kept.status_code == 422
    assert not_kept.json()["detail"][0]["loc"] == ["body", "outputs", "first"]
    assert bad_inputs.status_code == 422
    assert unknown.status_code == 404
    assert no_version.status_code == 404
    listed = (await client.get("/runs", params={"flow": "Resumable"})).json()["items"]
    assert [run["run_id"] for run in listed] == [failed["run_id"]]  # none was created

    await register(client, SLOW_YAML)
    running = (await client.post("/flows/Slow/runs", json={})).json()["run_id"]
    await poll_run(client, running, until=("running",), step="nap")
    conflict = await client.post(f"/runs/{running}/fork", json={"from_step": "nap"})
    assert conflict.status_code == 409
    await client.post(f"/runs/{running}/cancel")


async def test_diff_lists_each_step_and_what_differs(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    failed = await failed_run(client, tmp_path)
    (tmp_path / "ready").touch()
    started = await client.post(f"/runs/{failed['run_id']}/fork", json={"from_step": "second"})
    fork = await poll_run(client, started.json()["run_id"])

    response = await client.get(f"/runs/{failed['run_id']}/diff/{fork['run_id']}")

    assert response.status_code == 200
    diff = response.json()
    assert (diff["a"], diff["b"], diff["same"], diff["inputs"]) == (
        failed["run_id"],
        fork["run_id"],
        False,
        None,
    )
    steps = {step["step_id"]: step for step in diff["steps"]}
    assert steps["first"] == {"step_id": "first", "task_index": 0, "same": True, "differences": {}}
    second = steps["second"]["differences"]
    assert second["status"] == {"a": "failed", "b": "completed"}
    assert second["outputs"] == {"a": None, "b": {"count": 2}}
    assert second["error"]["a"]["step"] == "second"
    assert second["error"]["b"] is None
    assert "attempts" not in second  # one attempt in each
    assert steps["third"]["differences"]["status"] == {"a": "cancelled", "b": "completed"}
    same = (await client.get(f"/runs/{fork['run_id']}/diff/{fork['run_id']}")).json()
    assert same["same"] is True
    missing = await client.get(f"/runs/{fork['run_id']}/diff/{UNKNOWN}")
    assert missing.status_code == 404


async def test_diff_cuts_large_values_as_a_run_answer_does(database_url: str) -> None:
    settings = api_settings(database_url, max_answer_value_bytes=2048, max_answer_bytes=8192)
    async with serve(settings) as client:
        await register(client, GREET_YAML)
        ids = [
            (
                await client.post("/flows/Greet/execute", json={"inputs": {"name": name * 4000}})
            ).json()["run_id"]
            for name in ("a", "b")
        ]

        diff = (await client.get(f"/runs/{ids[0]}/diff/{ids[1]}")).json()

        assert diff["inputs"]["a"]["name"] == {
            "truncated": True,
            "bytes": 4002,
            "href": f"/runs/{ids[0]}/inputs",
        }
        greet = next(step for step in diff["steps"] if step["step_id"] == "greet")
        outputs = greet["differences"]["outputs"]
        assert outputs["b"]["text"]["href"] == f"/runs/{ids[1]}/steps/greet/outputs?task_index=0"
        whole = await client.get(outputs["b"]["text"]["href"])
        assert whole.json()["text"] == f"Hello, {'b' * 4000}!"

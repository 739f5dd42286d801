"""Starting, waiting for, reading, listing, cancelling and retrying runs over HTTP."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.api.flows import FAILING_YAML, GREET_YAML, RESUMABLE_YAML, SLOW_YAML
from tests.api.support import api_settings, poll_run, register, serve
from tests.api.tasks import executions


async def test_execute_answers_the_finished_run(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)

    response = await client.post("/flows/Greet/execute", json={"inputs": {"name": "Ada"}})

    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"run_id", "flow", "version", "status", "outputs", "error", "duration_ms"}
    assert answer["flow"] == "Greet"
    assert answer["version"] == 1
    assert answer["status"] == "completed"
    assert answer["outputs"] == {"text": "Hello, Ada!", "times": 1}
    assert answer["error"] is None
    assert answer["duration_ms"] >= 0
    assert "location" not in response.headers


async def test_execute_runs_the_version_asked_for(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)
    await register(client, GREET_YAML.replace("Hello", "Bonjour"))

    old = await client.post("/flows/Greet/execute", json={"inputs": {"name": "Ada"}, "version": 1})
    new = await client.post("/flows/Greet/execute", json={"inputs": {"name": "Ada"}})

    assert (old.json()["version"], old.json()["outputs"]["text"]) == (1, "Hello, Ada!")
    assert (new.json()["version"], new.json()["outputs"]["text"]) == (2, "Bonjour, Ada!")


async def test_a_failed_run_is_still_200_with_its_error(client: httpx.AsyncClient) -> None:
    await register(client, FAILING_YAML)

    response = await client.post("/flows/Failing/execute", json={"inputs": {"reason": "late"}})

    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "failed"
    assert answer["error"] == {"step": "explode", "type": "TaskError", "message": "it is late"}


async def test_wait_0_answers_202_and_the_run_finishes(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)

    response = await client.post(
        "/flows/Greet/execute", json={"inputs": {"name": "Ada"}, "wait": 0}
    )

    assert response.status_code == 202
    answer = response.json()
    assert answer["status"] in ("running", "completed")
    assert response.headers["location"] == f"/runs/{answer['run_id']}"
    run = await poll_run(client, answer["run_id"])
    assert run["status"] == "completed"
    assert run["outputs"] == {"text": "Hello, Ada!", "times": 1}


async def test_wait_defaults_to_execute_wait_seconds_and_is_capped(database_url: str) -> None:
    settings = api_settings(database_url, execute_wait_seconds=0.1, max_wait_seconds=0.2)
    async with serve(settings) as client:
        await register(client, SLOW_YAML)
        started = time.monotonic()

        by_default = await client.post("/flows/Slow/execute", json={})
        capped = await client.post("/flows/Slow/execute", json={"wait": 3600})

        assert time.monotonic() - started < 10  # not the hour asked for, nor the 30 s nap
        assert (by_default.status_code, capped.status_code) == (202, 202)
        for answer in (by_default, capped):
            assert answer.json()["status"] == "running"
            run_id = answer.json()["run_id"]
            assert (await client.post(f"/runs/{run_id}/cancel")).status_code == 200


async def test_a_background_run_is_run_by_the_embedded_worker(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)

    response = await client.post("/flows/Greet/runs", json={"inputs": {"name": "Ada", "times": 2}})

    assert response.status_code == 202
    answer = response.json()
    assert answer == {"run_id": answer["run_id"], "status": "queued"}
    assert response.headers["location"] == f"/runs/{answer['run_id']}"
    run = await poll_run(client, answer["run_id"])
    assert run["status"] == "completed"
    assert run["inputs"] == {"name": "Ada", "times": 2}
    assert run["outputs"] == {"text": "Hello, Ada!", "times": 2}


async def test_the_run_shows_every_step_with_its_state(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)
    run_id = (await client.post("/flows/Greet/execute", json={"inputs": {"name": "Ada"}})).json()[
        "run_id"
    ]

    run = (await client.get(f"/runs/{run_id}")).json()

    assert run["run_id"] == run_id
    assert (run["flow"], run["version"], run["status"], run["remaining_steps"]) == (
        "Greet",
        1,
        "completed",
        0,
    )
    assert run["inputs"] == {"name": "Ada", "times": 1}
    assert run["created_at"] <= run["started_at"] <= run["finished_at"]
    greet, shout = run["steps"]
    assert (greet["step_id"], greet["status"], greet["attempts"]) == ("greet", "completed", 1)
    assert greet["outputs"] == {"text": "Hello, Ada!"}
    assert greet["duration_ms"] >= 0
    assert (shout["step_id"], shout["status"], shout["task_index"]) == ("shout", "skipped", 0)
    assert shout["error"] is None


async def test_a_running_run_shows_its_waiting_and_pending_steps(
    client: httpx.AsyncClient,
) -> None:
    await register(client, SLOW_YAML)
    run_id = (await client.post("/flows/Slow/runs", json={})).json()["run_id"]

    run = await poll_run(client, run_id, until=("running",), step="nap")

    assert [(step["step_id"], step["status"]) for step in run["steps"]] == [
        ("first", "completed"),
        ("nap", "waiting"),
        ("last", "pending"),
    ]
    assert run["remaining_steps"] == 2
    assert (await client.post(f"/runs/{run_id}/cancel")).status_code == 200


async def test_runs_are_listed_newest_first_page_by_page(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)
    await register(client, FAILING_YAML)
    created = []
    for number in range(5):
        answer = await client.post("/flows/Greet/execute", json={"inputs": {"name": f"n{number}"}})
        created.append(answer.json()["run_id"])
    failed = (await client.post("/flows/Failing/execute", json={})).json()["run_id"]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"flow": "Greet", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/runs", params=params)).json()
        seen += [run["run_id"] for run in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == created[::-1]
    assert pages == 3
    everything = (await client.get("/runs")).json()
    assert [run["run_id"] for run in everything["items"]] == [failed, *created[::-1]]
    assert everything["next_cursor"] is None
    assert "steps" not in everything["items"][0]
    only_failed = (await client.get("/runs", params={"status": "failed"})).json()
    assert [run["run_id"] for run in only_failed["items"]] == [failed]
    failed_greets = (await client.get("/runs", params={"status": "failed", "flow": "Greet"})).json()
    assert failed_greets == {"items": [], "next_cursor": None}


async def test_a_running_run_is_cancelled_once(client: httpx.AsyncClient) -> None:
    await register(client, SLOW_YAML)
    run_id = (await client.post("/flows/Slow/runs", json={})).json()["run_id"]
    await poll_run(client, run_id, until=("running",), step="nap")

    cancelled = await client.post(f"/runs/{run_id}/cancel")

    assert cancelled.status_code == 200
    run = cancelled.json()
    assert run["status"] == "cancelled"
    assert [(step["step_id"], step["status"]) for step in run["steps"]] == [
        ("first", "completed"),
        ("nap", "cancelled"),
        ("last", "cancelled"),
    ]
    again = await client.post(f"/runs/{run_id}/cancel")
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]


async def test_retry_resumes_a_failed_run_without_rerunning_finished_steps(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register(client, RESUMABLE_YAML)
    inputs = {"directory": str(tmp_path)}
    failed = (await client.post("/flows/Resumable/execute", json={"inputs": inputs})).json()
    assert (failed["status"], failed["error"]["step"]) == ("failed", "second")
    (tmp_path / "ready").touch()

    response = await client.post(f"/runs/{failed['run_id']}/retry")

    assert response.status_code == 202
    assert response.headers["location"] == f"/runs/{failed['run_id']}"
    assert response.json()["status"] in ("running", "completed")
    run = await poll_run(client, failed["run_id"])
    assert run["status"] == "completed"
    assert run["outputs"] == {"second": 2}
    assert run["error"] is None
    assert [executions(tmp_path, step) for step in ("first", "second", "third")] == [1, 2, 1]


async def test_a_retried_run_answers_the_steps_it_has_left(client: httpx.AsyncClient) -> None:
    await register(client, SLOW_YAML)
    run_id = (await client.post("/flows/Slow/runs", json={})).json()["run_id"]
    await poll_run(client, run_id, until=("running",), step="nap")
    await client.post(f"/runs/{run_id}/cancel")

    retried = await client.post(f"/runs/{run_id}/retry")
    running = await poll_run(client, run_id, until=("running",), step="nap")

    # `first` completed and is kept; `nap` (30 s) and `last` run again.
    assert retried.status_code == 202
    assert (retried.json()["status"], retried.json()["remaining_steps"]) == ("running", 2)
    assert running["remaining_steps"] == 2
    assert (await client.post(f"/runs/{run_id}/cancel")).json()["remaining_steps"] == 0


async def test_runs_in_the_wrong_state_are_not_retried(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)
    run_id = (await client.post("/flows/Greet/execute", json={"inputs": {"name": "A"}})).json()[
        "run_id"
    ]

    response = await client.post(f"/runs/{run_id}/retry")

    assert response.status_code == 409
    assert "completed" in response.json()["detail"]
    assert (await client.post(f"/runs/{run_id}/cancel")).status_code == 409


async def test_unknown_runs_are_404(client: httpx.AsyncClient) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"

    for method, path in (
        ("GET", f"/runs/{unknown}"),
        ("POST", f"/runs/{unknown}/cancel"),
        ("POST", f"/runs/{unknown}/retry"),
    ):
        response = await client.request(method, path)

        assert response.status_code == 404, path
        assert unknown in response.json()["detail"]


async def test_a_repeated_idempotency_key_answers_the_first_run(
    client: httpx.AsyncClient,
) -> None:
    await register(client, GREET_YAML)
    request = {"json": {"inputs": {"name": "Ada"}}, "headers": {"Idempotency-Key": "order-42"}}

    first = await client.post("/flows/Greet/runs", **request)  # type: ignore[arg-type]
    again = await client.post("/flows/Greet/runs", **request)  # type: ignore[arg-type]
    executed = await client.post("/flows/Greet/execute", **request)  # type: ignore[arg-type]

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["run_id"] == first.json()["run_id"]
    assert executed.json()["run_id"] == first.json()["run_id"]
    assert executed.status_code == 200
    assert len((await client.get("/runs")).json()["items"]) == 1


async def test_concurrent_requests_with_one_key_make_one_run(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)
    headers = {"Idempotency-Key": "concurrent"}

    answers = await asyncio.gather(
        *(
            client.post("/flows/Greet/execute", json={"inputs": {"name": "Ada"}}, headers=headers)
            for _ in range(2)
        ),
        *(
            client.post("/flows/Greet/runs", json={"inputs": {"name": "Ada"}}, headers=headers)
            for _ in range(2)
        ),
    )

    assert all(answer.status_code in (200, 202) for answer in answers), answers
    assert len({answer.json()["run_id"] for answer in answers}) == 1
    runs = (await client.get("/runs")).json()["items"]
    assert len(runs) == 1
    assert (await poll_run(client, runs[0]["run_id"]))["status"] == "completed"


async def test_a_repeated_execute_waits_for_the_run_the_first_request_queued(
    database_url: str,
) -> None:
    async with serve(api_settings(database_url, embedded_worker=False)) as client:
        await register(client, GREET_YAML)
        key = {"Idempotency-Key": "order-43"}
        body = {"inputs": {"name": "Ada"}}
        queued = await client.post("/flows/Greet/runs", json=body, headers=key)
        services = client._transport.app.state.services  # type: ignore[attr-defined]

        async def a_worker_claims_it_later() -> None:
            await asyncio.sleep(0.2)  # the repeated request is waiting by now
            assert await services.runner.claim(1) == 1

        executed, _ = await asyncio.gather(
            client.post("/flows/Greet/execute", json={**body, "wait": 10}, headers=key),
            a_worker_claims_it_later(),
        )

    assert queued.status_code == 202
    assert executed.status_code == 200
    assert executed.json()["run_id"] == queued.json()["run_id"]
    assert executed.json()["outputs"] == {"text": "Hello, Ada!", "times": 1}

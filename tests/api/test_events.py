"""GET /runs/{id}/events: a snapshot, then every transition live, on SQLite and PostgreSQL
(there with the run executing in another worker process), resumed with Last-Event-ID."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from app.settings import Settings
from tests.api.flows import FAILING_YAML
from tests.api.sse import Message, events, read_stream, served, start_worker
from tests.api.support import add_user, admin_of, api_settings, auth_settings, register, serve
from tests.databases import fresh_store_database

WATCHED_YAML = """\
flow: Watched
inputs:
  - {name: directory, type: string, required: true}
steps:
  - task: WaitForMarker
    id: gate
    inputs: {directory: "${inputs.directory}", marker: go}
  - set: {id: greet, values: {text: hi}}
outputs:
  text: ${greet.text}
"""
GATED_FAILING_YAML = """\
flow: GatedFailing
inputs:
  - {name: directory, type: string, required: true}
steps:
  - task: WaitForMarker
    id: gate
    inputs: {directory: "${inputs.directory}", marker: go}
  - fail: {id: explode, message: "it is broken"}
  - set: {id: after, values: {ok: true}}
"""
STREAM_DEADLINE_SECONDS = 30.0


async def start_watched(client: httpx.AsyncClient, directory: Path) -> str:
    await register(client, WATCHED_YAML)
    started = await client.post(
        "/flows/Watched/runs", json={"inputs": {"directory": str(directory)}}
    )
    assert started.status_code == 202, started.text
    run_id: str = started.json()["run_id"]
    return run_id


async def follow(
    client: httpx.AsyncClient, run_id: str, directory: Path, *, open_gate: bool = True
) -> list[Message]:
    """The stream's messages until it ends; the gate opens once the snapshot is in (the
    run's event and its tasks', the gate's first)."""
    messages: list[Message] = []
    async with asyncio.timeout(STREAM_DEADLINE_SECONDS):
        async for message in read_stream(client, f"/runs/{run_id}/events"):
            messages.append(message)
            if open_gate and message.data.get("step_id") == "gate":
                (directory / "go").touch()
    return messages


def check_live_stream(messages: list[Message], run_id: str) -> None:
    """A snapshot (the run, then a step event per task, all with the same id), then the
    transitions in order with increasing ids, running then completed for each step, and the
    run's terminal event last."""
    received = [message for message in messages if message.comment is None]
    snapshot, live = received[:3], received[3:]
    assert [m.data["type"] for m in snapshot] == ["run", "step", "step"]
    assert {m.data["run_id"] for m in received} == {run_id}
    assert len({m.id for m in snapshot}) == 1
    assert snapshot[0].data["status"] in ("queued", "running")
    assert {m.data["step_id"]: m.data["status"] for m in snapshot[1:]} in (
        {"gate": "pending", "greet": "pending"},
        {"gate": "queued", "greet": "pending"},
        {"gate": "running", "greet": "pending"},
    )
    ids = [m.event_id for m in live]
    assert ids == sorted(set(ids)), ids  # increasing, each once
    assert ids[0] > snapshot[0].event_id
    greet = [m.data["status"] for m in live if m.data.get("step_id") == "greet"]
    assert greet == ["queued", "running", "completed"]
    gate = [m.data["status"] for m in live if m.data.get("step_id") == "gate"]
    assert gate[-2:] == ["running", "completed"] or gate == ["completed"]
    completed = next(m for m in live if m.step == ("greet", "completed"))
    assert completed.data["outputs"] == {"text": "hi"}
    assert completed.data["attempt"] == 1
    last = live[-1]
    assert (last.data["type"], last.data["status"]) == ("run", "completed")
    assert last.data["outputs"] == {"text": "hi"}
    assert "T" in last.data["at"]


async def test_a_stream_sends_the_snapshot_then_every_transition_and_ends_with_the_run(
    settings: Settings, tmp_path: Path
) -> None:
    async with served(settings) as client:
        run_id = await start_watched(client, tmp_path)
        messages = await follow(client, run_id, tmp_path)
    check_live_stream(messages, run_id)


async def test_a_run_executed_by_another_process_is_followed_live_on_postgresql(
    tmp_path: Path,
) -> None:
    async with fresh_store_database("postgresql", tmp_path) as url:
        settings = api_settings(url, embedded_worker=False)
        async with served(settings) as client:
            run_id = await start_watched(client, tmp_path)
            worker = start_worker(url, tmp_path)
            try:
                messages = await follow(client, run_id, tmp_path)
                run = (await client.get(f"/runs/{run_id}")).json()
            finally:
                worker.terminate()
                worker.wait(timeout=20)
    check_live_stream(messages, run_id)
    assert run["status"] == "completed"


async def test_last_event_id_resumes_with_exactly_the_later_events(
    settings: Settings, tmp_path: Path
) -> None:
    async with served(settings) as client:
        run_id = await start_watched(client, tmp_path)
        first = [m for m in await follow(client, run_id, tmp_path) if m.comment is None]
        live = first[3:]
        middle = live[len(live) // 2]
        resumed = await client.get(
            f"/runs/{run_id}/events", headers={"Last-Event-ID": str(middle.event_id)}
        )
        everything = await client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "0"})
    later = events(resumed.text)
    assert [(m.id, m.data) for m in later] == [
        (m.id, m.data) for m in live if m.event_id > middle.event_id
    ]
    # From the start: the store kept the events from the first watch on, the live ones.
    replayed = events(everything.text)
    assert [(m.id, m.data) for m in replayed] == [(m.id, m.data) for m in live]


async def test_a_finished_runs_stream_is_its_snapshot_ending_with_the_terminal_event(
    client: httpx.AsyncClient,
) -> None:
    await register(client, FAILING_YAML)
    run = (await client.post("/flows/Failing/execute", json={"inputs": {}})).json()
    response = await client.get(f"/runs/{run['run_id']}/events")
    assert response.status_code == 200
    received = events(response.text)
    steps = {m.data["step_id"]: m.data for m in received if m.data["type"] == "step"}
    assert {step: data["status"] for step, data in steps.items()} == {
        "before": "completed",
        "explode": "failed",
        "after": "cancelled",
    }
    assert steps["explode"]["error"]["message"] == "it is broken"
    assert steps["before"]["outputs"] == {"ok": True}
    assert (received[-1].data["type"], received[-1].data["status"]) == ("run", "failed")
    assert received[-1].data["error"]["step"] == "explode"


async def test_a_failed_steps_event_carries_its_error(settings: Settings, tmp_path: Path) -> None:
    async with served(settings) as client:
        await register(client, GATED_FAILING_YAML)
        started = await client.post(
            "/flows/GatedFailing/runs", json={"inputs": {"directory": str(tmp_path)}}
        )
        assert started.status_code == 202, started.text
        messages = await follow(client, started.json()["run_id"], tmp_path)
    live = [m for m in messages if m.comment is None][4:]
    received = [(m.data.get("step_id"), m.data["status"]) for m in live]
    explode = [status for step, status in received if step == "explode"]
    assert explode == ["queued", "running", "failed"]
    assert received.index(("explode", "failed")) < received.index(("after", "cancelled"))
    assert received[-1] == (None, "failed")
    failed = next(m for m in live if m.step == ("explode", "failed"))
    assert failed.data["error"] == {
        "step": "explode",
        "type": failed.data["error"]["type"],
        "message": "it is broken",
    }
    assert failed.data["attempt"] == 1


async def test_keep_alive_comments_come_while_nothing_happens(
    database_url: str, tmp_path: Path
) -> None:
    settings = api_settings(database_url, events_keepalive_seconds=0.1)
    async with served(settings) as client:
        run_id = await start_watched(client, tmp_path)
        comments: list[float] = []
        started = time.monotonic()
        async with asyncio.timeout(STREAM_DEADLINE_SECONDS):
            async for message in read_stream(client, f"/runs/{run_id}/events"):
                if message.comment == "keep-alive":
                    comments.append(time.monotonic() - started)
                if len(comments) == 3:
                    (tmp_path / "go").touch()
    assert len(comments) >= 3
    assert comments[0] < 2


async def test_the_events_of_a_run_the_caller_may_not_see_answer_404(tmp_path: Path) -> None:
    async with fresh_store_database("sqlite", tmp_path) as url, serve(auth_settings(url)) as client:
        admin = await admin_of(client)
        ada = await add_user(admin, "ada")
        bob = await add_user(admin, "bob")
        await ada.register(FAILING_YAML)
        run = (await ada.post("/flows/Failing/execute", json={"inputs": {}})).json()
        seen = await ada.get(f"/runs/{run['run_id']}/events")
        unseen = await bob.get(f"/runs/{run['run_id']}/events")
        unknown = await ada.get("/runs/00000000-0000-4000-8000-000000000000/events")
        anonymous = await client.get(f"/runs/{run['run_id']}/events")
    assert seen.status_code == 200
    assert unseen.status_code == 404, unseen.text
    assert unknown.status_code == 404
    assert anonymous.status_code == 401


async def test_a_caller_holds_a_bounded_number_of_streams(
    database_url: str, tmp_path: Path
) -> None:
    settings = api_settings(database_url, events_streams_per_caller=1)
    async with served(settings) as client:
        run_id = await start_watched(client, tmp_path)
        async with client.stream("GET", f"/runs/{run_id}/events") as first:
            assert first.status_code == 200
            second = await client.get(f"/runs/{run_id}/events")
            assert second.status_code == 429, second.text
        (tmp_path / "go").touch()


async def test_a_stream_whose_client_left_frees_its_place(
    database_url: str, tmp_path: Path
) -> None:
    settings = api_settings(
        database_url, events_streams_per_caller=1, events_keepalive_seconds=0.05
    )
    async with served(settings) as client:
        run_id = await start_watched(client, tmp_path)
        async with client.stream("GET", f"/runs/{run_id}/events") as first:
            assert first.status_code == 200
        # The server sees the client gone at its next write (a keep-alive), and closes.
        async with asyncio.timeout(STREAM_DEADLINE_SECONDS):
            while True:
                async with client.stream("GET", f"/runs/{run_id}/events") as again:
                    if again.status_code == 200:
                        break
                await asyncio.sleep(0.05)
        (tmp_path / "go").touch()

"""Run events on SQLite, PostgreSQL and MariaDB: once a run is watched, each transition the
store writes adds its event in the same transaction, ids increase per run, outputs are read
from the task's row, a refused write leaves no event, and the snapshot names the last event it
includes; a run nobody watches writes none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.domain.clock import utcnow
from app.domain.records import OmittedValue, RunEvent
from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus
from app.engine.store import NewRun, RunEnd, TaskFinish
from app.errors import LeaseLostError
from app.store.run_store import SqlRunStore
from tests.databases import STORE_DATABASES
from tests.store.contract.conftest import LEASE, SqlStores, new_run, sql_stores


@pytest.fixture(params=STORE_DATABASES)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStores]:
    async with sql_stores(request.param, tmp_path) as opened:
        yield opened


def summary(events: list[RunEvent]) -> list[tuple[str, str | None, int | None, str]]:
    return [(event.type, event.step_id, event.task_index, event.status) for event in events]


async def all_events(store: SqlRunStore, run_id: str) -> list[RunEvent]:
    return await store.events_after(run_id, 0, 1000, 1 << 20)


async def test_every_transition_of_a_run_is_an_event_in_order(stores: SqlStores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("w1")
    assert isinstance(store, SqlRunStore)
    await store.create(new_run("r1", definition_id, steps=("a", "fan", "b")))
    assert await store.watch("r1") is not None
    (claim,) = await store.claim(utcnow(), LEASE, 1)
    now = utcnow()
    await store.run_started(NewRun("r1", "f", {}, ["a", "fan", "b"], ["a"], now))
    await store.task_started("r1", TaskKey("a"), 1, now)  # written with the finish
    await store.task_finished(
        "r1", TaskFinish(TaskKey("a"), TaskStatus.COMPLETED, {"x": 1}, None, now, ["fan"])
    )
    await store.tasks_expanded("r1", "fan", 2)
    await store._write_mark("r1", TaskKey("fan", 1), (1, now))  # a long step's own mark
    await store.attempt_failed("r1", TaskKey("fan", 1), 1, RunError("fan", "E", "again"), now)
    error = RunError("fan", "E", "no")
    ended = RunEnd(RunStatus.FAILED, None, error, now)
    await store.task_finished(
        "r1", TaskFinish(TaskKey("fan", 1), TaskStatus.FAILED, None, error, now, ended=ended)
    )

    events = await all_events(store, "r1")
    ids = [event.id for event in events]
    assert ids == sorted(set(ids))
    events[9:11] = sorted(events[9:11], key=lambda event: event.step_id or "")
    assert summary(events) == [
        ("run", None, None, "running"),
        ("step", "a", 0, "queued"),
        ("step", "a", 0, "running"),
        ("step", "a", 0, "completed"),
        ("step", "fan", 0, "queued"),
        ("step", "fan", 1, "queued"),
        ("step", "fan", 1, "running"),
        ("step", "fan", 1, "queued"),  # its retry, with the attempt's error
        ("step", "fan", 1, "failed"),
        # (the other unfinished tasks, cancelled in the same commit, then the run's end)
        ("step", "b", 0, "cancelled"),
        ("step", "fan", 0, "cancelled"),
        ("run", None, None, "failed"),
    ]
    assert events[2].attempt == 1
    assert events[2].at == now
    assert events[3].outputs == {"x": 1}  # joined from the task's row
    assert events[7].error == RunError("fan", "E", "again")
    assert (events[8].error, events[8].attempt) == (error, 1)
    assert events[-1].error == error
    assert events[-1].ends_run
    assert not any(event.ends_run for event in events[:-1])
    assert claim.run_id == "r1"

    later = await store.events_after("r1", events[5].id, 1000, 1 << 20)
    assert [event.id for event in later] == ids[6:]
    record, last = await store.watch("r1") or (None, 0)
    assert record is not None
    assert record.status is RunStatus.FAILED
    assert last == ids[-1]


async def test_a_cancelled_run_cancels_its_tasks_then_ends(stores: SqlStores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("w1")
    assert isinstance(store, SqlRunStore)
    await store.create(new_run("r1", definition_id, steps=("a", "b"), owner="w1"))
    await store.watch("r1")
    now = utcnow()
    await store.run_started(NewRun("r1", "f", {}, ["a", "b"], ["a"], now))
    assert await store.end("r1", RunStatus.CANCELLED, now)
    assert summary(await all_events(store, "r1"))[-3:] == [
        ("step", "a", 0, "cancelled"),
        ("step", "b", 0, "cancelled"),
        ("run", None, None, "cancelled"),
    ]
    # A retry runs it again: running, its tasks replaced.
    assert await store.restart("r1", utcnow(), LEASE, remaining_steps=2) is not None
    await store.run_started(NewRun("r1", "f", {}, ["a", "b"], ["a"], utcnow(), resumed=True))
    assert summary(await all_events(store, "r1"))[-4:] == [
        ("run", None, None, "running"),
        ("step", "a", 0, "pending"),
        ("step", "b", 0, "pending"),
        ("step", "a", 0, "queued"),
    ]


async def test_a_write_refused_for_a_lost_lease_leaves_no_event(stores: SqlStores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store, other = stores.of("w1"), stores.of("w2")
    assert isinstance(store, SqlRunStore)
    await store.create(new_run("r1", definition_id, steps=("a",), owner="w1"))
    await store.watch("r1")
    before = await all_events(store, "r1")
    now = utcnow()
    with pytest.raises(LeaseLostError):
        await other.task_finished(
            "r1", TaskFinish(TaskKey("a"), TaskStatus.COMPLETED, {}, None, now)
        )
    assert await all_events(store, "r1") == before


async def test_large_outputs_are_left_in_the_store(stores: SqlStores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("w1")
    assert isinstance(store, SqlRunStore)
    await store.create(new_run("r1", definition_id, steps=("a",), owner="w1"))
    await store.watch("r1")
    now = utcnow()
    await store.run_started(NewRun("r1", "f", {}, ["a"], ["a"], now))
    big = {"text": "x" * 5000}
    ended = RunEnd(RunStatus.COMPLETED, big, None, now)
    await store.task_finished(
        "r1", TaskFinish(TaskKey("a"), TaskStatus.COMPLETED, big, None, now, ended=ended)
    )
    events = await store.events_after("r1", 0, 100, 1000)
    completed = [event for event in events if event.status == "completed"]
    assert [event.type for event in completed] == ["step", "run"]
    assert all(isinstance(event.outputs, OmittedValue) for event in completed)
    whole = await store.events_after("r1", 0, 100, 1 << 20)
    assert [event.outputs for event in whole if event.status == "completed"] == [big, big]


async def test_watchers_of_this_process_hear_of_its_commits(stores: SqlStores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("w1")
    assert isinstance(store, SqlRunStore)
    heard: list[str] = []
    store.on_events(heard.append)
    await store.create(new_run("r1", definition_id, steps=("a",), owner="w1"))
    await store.watch("r1")
    await store.run_started(NewRun("r1", "f", {}, ["a"], ["a"], utcnow()))
    await store.committed("r1")  # a new run's start may be committed later than it answers
    # PostgreSQL notifies every process, this one included, with the commit.
    assert heard == ([] if store.notifies else ["r1"])


async def test_a_run_nobody_watches_writes_no_event(stores: SqlStores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("w1")
    assert isinstance(store, SqlRunStore)
    heard: list[str] = []
    store.on_events(heard.append)
    await store.create(new_run("r1", definition_id, steps=("a", "b"), owner="w1"))
    now = utcnow()
    await store.run_started(NewRun("r1", "f", {}, ["a", "b"], ["a"], now))
    await store.task_finished(
        "r1", TaskFinish(TaskKey("a"), TaskStatus.COMPLETED, {}, None, now, ["b"])
    )
    assert await store.end("r1", RunStatus.CANCELLED, now)
    assert await all_events(store, "r1") == []
    assert heard == []


async def test_watching_starts_the_events_after_the_snapshot(stores: SqlStores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("w1")
    assert isinstance(store, SqlRunStore)
    await store.create(new_run("r1", definition_id, steps=("a", "b"), owner="w1"))
    now = utcnow()
    await store.run_started(NewRun("r1", "f", {}, ["a", "b"], ["a"], now))
    await store.task_started("r1", TaskKey("a"), 1, now)
    await store.task_finished(
        "r1", TaskFinish(TaskKey("a"), TaskStatus.COMPLETED, {"x": 1}, None, now, ["b"])
    )

    record, last = await store.watch("r1") or (None, -1)
    assert record is not None
    assert [(step.step_id, step.status) for step in record.steps] == [
        ("a", TaskStatus.COMPLETED),
        ("b", TaskStatus.QUEUED),
    ]
    assert last == 0  # what happened before is in the snapshot, not in events
    ended = RunEnd(RunStatus.COMPLETED, {"y": 2}, None, now)
    await store.task_finished(
        "r1", TaskFinish(TaskKey("b"), TaskStatus.COMPLETED, {"y": 2}, None, now, ended=ended)
    )
    assert summary(await all_events(store, "r1")) == [
        ("step", "b", 0, "completed"),
        ("run", None, None, "completed"),
    ]


async def test_watching_a_finished_run_gives_its_snapshot(stores: SqlStores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("w1")
    assert isinstance(store, SqlRunStore)
    await store.create(new_run("r1", definition_id, steps=("a",), owner="w1"))
    assert await store.end("r1", RunStatus.CANCELLED, utcnow())
    record, last = await store.watch("r1") or (None, -1)
    assert record is not None
    assert record.status is RunStatus.CANCELLED
    assert last == 0
    assert await store.watch("missing") is None

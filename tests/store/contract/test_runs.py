"""Runs, on every run store: creation, idempotency, versions, cancellation, pages."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from app.domain.clock import utcnow
from app.domain.records import Creation, OmittedValue, StepRecord
from app.domain.runs import RunError, RunStatus, TaskStatus
from app.engine.store import NewRun, RunEnd
from app.errors import LeaseLostError, UnknownFlowError, UnknownVersionError
from tests.store.contract.conftest import LEASE, T0, RunPorts, Stores, new_run
from tests.store.samples import pure_finish


async def test_a_run_is_created_with_a_pending_task_per_step_in_order(stores: Stores) -> None:
    user = await stores.user("u1")
    definition_id = await stores.flow("f", user)
    store = stores.of("api")

    assert await store.create(new_run("r1", definition_id, created_by=user)) is Creation.CREATED

    run = await store.get("r1")
    assert run is not None
    assert (run.flow, run.version, run.status, run.inputs) == ("f", 1, RunStatus.QUEUED, {"n": 1})
    assert (run.remaining_steps, run.created_at, run.created_by) == (2, T0, "name-u1")
    assert [(step.step_id, step.status) for step in run.steps] == [
        ("a", TaskStatus.PENDING),
        ("b", TaskStatus.PENDING),
    ]
    assert await store.get("r2") is None


async def test_the_same_key_of_the_same_caller_gives_the_same_run(stores: Stores) -> None:
    one, two = await stores.user("u1"), await stores.user("u2")
    definition_id = await stores.flow("f", one)
    store = stores.of("api")

    first = new_run("r1", definition_id, key="k", created_by=one)
    assert await store.create(first) is Creation.CREATED
    again = new_run("r2", definition_id, key="k", created_by=one)
    assert await store.create(again) is Creation.KEY_TAKEN
    running = new_run("r3", definition_id, key="k", created_by=one, owner="api")
    assert await store.create(running) is Creation.KEY_TAKEN  # PostgreSQL's one statement
    other = new_run("r4", definition_id, key="k", created_by=two)
    assert await store.create(other) is Creation.CREATED

    assert await store.id_for_key("k", "f", one) == "r1"
    assert await store.id_for_key("k", "f", two) == "r4"
    assert await store.id_for_key("other", "f", one) is None
    assert await store.get("r2") is None


async def test_a_run_of_a_version_no_longer_current_is_not_created(stores: Stores) -> None:
    user = await stores.user("u1")
    first = await stores.flow("f", user)
    second = await stores.version("f")
    store = stores.of("api")

    for owner in (None, "api"):  # queued, and running (PostgreSQL's one statement)
        stale = new_run(f"stale-{owner}", first, latest_only=True, owner=owner)
        pinned = new_run(f"pinned-{owner}", first, owner=owner)  # version 1 by number
        gone = new_run(f"gone-{owner}", second + 1000, owner=owner)
        assert await store.create(stale) is Creation.STALE
        assert await store.create(pinned) is Creation.CREATED
        assert await store.create(gone) is Creation.STALE

    assert await store.locate("f", None) == (second, 2)
    assert await store.locate("f", 1) == (first, 1)
    with pytest.raises(UnknownVersionError):
        await store.locate("f", 3)
    with pytest.raises(UnknownFlowError):
        await store.locate("g", None)


async def chain_executed(store: RunPorts, run_id: str) -> None:
    """What the engine writes of a run of two pure steps, `a` then `b`."""
    await store.run_started(NewRun(run_id, "f", {"n": 1}, ["a", "b"], ["a"], utcnow()))
    await store.task_finished(run_id, pure_finish("a", released=("b",)))
    ended = RunEnd(RunStatus.COMPLETED, {"b": 1}, None, utcnow())
    await store.task_finished(run_id, pure_finish("b", end=ended))


async def test_a_run_created_later_exists_once_its_execution_is_written(stores: Stores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("api")
    creation = store.create_later(new_run("r1", definition_id, owner="api", latest_only=True))
    if creation is None:
        pytest.skip("this store creates every run at once (`create`)")

    await chain_executed(store, "r1")

    assert await creation is Creation.CREATED
    run = await store.get("r1")
    assert run is not None
    assert (run.status, run.outputs, run.remaining_steps) == (RunStatus.COMPLETED, {"b": 1}, 0)
    assert [(step.step_id, step.status) for step in run.steps] == [
        ("a", TaskStatus.COMPLETED),
        ("b", TaskStatus.COMPLETED),
    ]


async def test_a_stale_run_created_later_refuses_its_writes_and_leaves_nothing(
    stores: Stores,
) -> None:
    user = await stores.user("u1")
    first = await stores.flow("f", user)
    await stores.version("f")
    store = stores.of("api")
    creation = store.create_later(new_run("r1", first, owner="api", latest_only=True))
    if creation is None:
        pytest.skip("this store creates every run at once (`create`)")

    with pytest.raises(LeaseLostError, match="not created"):
        await chain_executed(store, "r1")

    assert await creation is Creation.STALE
    assert await store.get("r1") is None


async def test_an_active_run_ends_once_and_its_tasks_are_cancelled(stores: Stores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("api")
    await store.create(new_run("queued", definition_id))
    await store.create(new_run("failing", definition_id))
    await store.create(new_run("done", definition_id))

    assert await store.end("queued", RunStatus.CANCELLED, T0)
    assert not await store.end("queued", RunStatus.CANCELLED, T0)
    failure = RunError(None, "DefinitionError", "no such task")
    assert await store.end("failing", RunStatus.FAILED, T0, failure)

    cancelled, failed = await store.get("queued"), await store.get("failing")
    assert cancelled is not None
    assert failed is not None
    assert (cancelled.status, cancelled.finished_at, cancelled.error) == (
        RunStatus.CANCELLED,
        T0,
        None,
    )
    assert {step.status for step in cancelled.steps} == {TaskStatus.CANCELLED}
    assert (failed.status, failed.error) == (RunStatus.FAILED, failure)
    assert [claim.run_id for claim in await store.claim(T0, LEASE, 10)] == ["done"]


async def test_a_fork_is_created_with_its_kept_tasks_as_they_finished(stores: Stores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("api")
    kept = StepRecord("a", 0, TaskStatus.COMPLETED, 2, {"x": 1}, None, T0, T0 + timedelta(1))
    fork = replace(
        new_run("fork", definition_id, steps=("b",), owner="api"),
        forked_from="source",
        kept_tasks=[kept],
    )

    assert await store.create(fork) is Creation.CREATED

    run = await store.get("fork")
    assert run is not None
    assert (run.status, run.forked_from, run.remaining_steps) == (RunStatus.RUNNING, "source", 1)
    assert run.steps[0] == kept
    assert [(step.step_id, step.status) for step in run.steps[1:]] == [("b", TaskStatus.PENDING)]
    created = await store.get("fork", with_steps=False)
    assert created is not None
    assert created.forked_from == "source"


async def test_a_failed_or_cancelled_run_restarts_under_a_new_lease(stores: Stores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("w1")
    await store.create(new_run("r1", definition_id))
    await store.create(new_run("r2", definition_id))
    await store.end("r1", RunStatus.CANCELLED, T0)

    claim = await store.restart("r1", T0, LEASE, 2)
    assert await store.restart("r2", T0, LEASE, 2) is None  # queued: not retryable

    assert claim is not None
    assert (claim.run_id, claim.definition_id, claim.taken_over) == ("r1", definition_id, True)
    restarted = await store.get("r1", with_steps=False)
    assert restarted is not None
    assert (restarted.status, restarted.finished_at) == (RunStatus.RUNNING, None)
    assert restarted.remaining_steps == 2  # before its resumed execution counts them again
    claimed = await stores.of("w2").claim(T0 + timedelta(seconds=LEASE - 1), LEASE, 10)
    assert [claim.run_id for claim in claimed] == ["r2"]  # r1 is held


async def test_pages_come_newest_first_filtered_and_only_of_visible_flows(
    stores: Stores,
) -> None:
    owner, viewer, stranger = [await stores.user(name) for name in ("u1", "u2", "u3")]
    private = await stores.flow("private", owner)
    shared = await stores.flow("shared", owner, shared_with=viewer)
    public = await stores.flow("public", owner, public=True)
    store = stores.of("api")
    runs = [("p0", private, "private"), ("s1", shared, "shared"), ("o2", public, "public")]
    runs += [("s3", shared, "shared"), ("o4", public, "public")]
    for index, (run_id, definition_id, flow) in enumerate(runs):
        at = T0 + timedelta(seconds=index)
        await store.create(new_run(run_id, definition_id, flow=flow, created_at=at))
    await store.end("s3", RunStatus.CANCELLED, T0)

    async def page(**kwargs: object) -> list[str]:
        query: dict[str, object] = {
            "flow": None,
            "status": None,
            "limit": 10,
            "after": None,
            "viewer": None,
        }
        found = await store.page(**(query | kwargs))  # type: ignore[arg-type]
        return [run.run_id for run in found]

    assert await page() == ["o4", "s3", "o2", "s1", "p0"]
    assert await page(limit=2) == ["o4", "s3"]
    assert await page(limit=2, after=(T0 + timedelta(seconds=3), "s3")) == ["o2", "s1"]
    assert await page(flow="shared") == ["s3", "s1"]
    assert await page(status=RunStatus.CANCELLED) == ["s3"]
    assert await page(viewer=viewer) == ["o4", "s3", "o2", "s1"]
    assert await page(viewer=stranger) == ["o4", "o2"]
    assert await page(viewer=owner) == ["o4", "s3", "o2", "s1", "p0"]
    assert await store.cursor_secret()


async def test_a_page_leaves_large_values_in_the_store(stores: Stores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("api")
    large = {"text": "x" * 500}
    await store.create(new_run("small", definition_id))
    later = T0 + timedelta(seconds=1)
    await store.create(replace(new_run("large", definition_id, inputs=large), created_at=later))

    found = await store.page(
        flow=None, status=None, limit=10, after=None, viewer=None, value_limit=100
    )

    assert [run.run_id for run in found] == ["large", "small"]
    assert isinstance(found[0].inputs, OmittedValue)
    assert found[0].inputs.bytes >= 500
    assert found[1].inputs == {"n": 1}


async def test_a_batch_of_runs_is_created_whole_or_not_at_all(stores: Stores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("api")
    batch = [new_run(f"b{index}", definition_id, latest_only=True) for index in range(3)]

    assert await store.create_all(batch) is Creation.CREATED
    for run in batch:
        created = await store.get(run.run_id)
        assert created is not None
        assert created.status is RunStatus.QUEUED
    await stores.version("f")  # a newer version: the batch's is no longer the latest
    stale = [new_run(f"s{index}", definition_id, latest_only=True) for index in range(3)]
    assert await store.create_all(stale) is Creation.STALE
    assert [await store.get(run.run_id) for run in stale] == [None, None, None]

"""Parked runs and signals, on every run store: a run with only waits left gives up its lease
until it wakes, by its time or by a signal, and any worker resumes it then."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from app.domain.clock import utcnow
from app.domain.records import Sending
from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.engine import FlowExecutor
from app.engine.store import NewRun, RunEnd
from app.errors import LeaseLostError
from app.tasks import TaskRegistry
from tests import polling
from tests.store.contract.conftest import LEASE, RunPorts, Stores, new_run

NAP = TaskKey("nap")


async def waiting_run(stores: Stores, source: str = "", steps: tuple[str, ...] = ("nap",)) -> str:
    """Run "r1", running under w1's lease, its first step `nap` waiting."""
    definition_id = await stores.flow("f", await stores.user("u1"), source=source)
    store = stores.of("w1")
    await store.create(new_run("r1", definition_id, steps=steps, owner="w1"))
    await store.run_started(NewRun("r1", "f", {}, list(steps), [steps[0]], utcnow()))
    return "r1"


async def task_of(store: RunPorts, run_id: str, step_id: str) -> Any:
    task = await store.task(run_id, step_id, 0)
    assert task is not None
    return task


async def test_a_parked_run_sleeps_without_a_lease_until_its_time_then_any_worker_wakes_it(
    stores: Stores,
) -> None:
    run_id = await waiting_run(stores, steps=("nap", "after"))
    first = stores.of("w1")
    until = utcnow() + timedelta(seconds=60)
    await first.task_waiting(run_id, NAP, until)

    assert await first.run_parked(run_id, until, []) is True

    assert await stores.of("w2").claim(until - timedelta(seconds=1), LEASE, 10) == []
    (woken,) = await stores.of("w2").claim(until, LEASE, 10)
    assert (woken.run_id, woken.taken_over, woken.woken) == (run_id, True, True)
    run = await stores.of("w2").get(run_id)
    assert run is not None
    assert run.status is RunStatus.RUNNING
    nap = await task_of(first, run_id, "nap")
    assert (nap.status, nap.available_at) == (TaskStatus.WAITING, until)


async def test_a_parked_run_refuses_the_writes_of_the_worker_that_parked_it(
    stores: Stores,
) -> None:
    run_id = await waiting_run(stores)
    first = stores.of("w1")
    await first.run_parked(run_id, utcnow() + timedelta(seconds=60), [])

    try:
        await first.task_waiting(run_id, NAP, None)
    except LeaseLostError:
        return
    raise AssertionError("a parked run's former worker could still write")


async def test_a_run_parked_for_a_signal_only_wakes_when_the_signal_comes(
    stores: Stores,
) -> None:
    run_id = await waiting_run(stores)
    first = stores.of("w1")
    await first.task_waiting(run_id, NAP, None)
    assert await first.run_parked(run_id, None, ["approve"]) is True
    far = utcnow() + timedelta(days=3650)
    assert await stores.of("w2").claim(far, LEASE, 10) == []

    sent = await stores.of("api").send_signal(run_id, "approve", {"yes": True}, utcnow(), 10)

    assert sent is Sending.WOKE
    (woken,) = await stores.of("w2").claim(utcnow(), LEASE, 10)
    assert woken.run_id == run_id
    signal = await stores.of("w2").signal_taken(run_id, NAP, "approve")
    assert signal is not None
    assert signal.payload == {"yes": True}


async def test_a_run_does_not_park_when_a_signal_it_waits_for_is_already_there(
    stores: Stores,
) -> None:
    run_id = await waiting_run(stores)
    await stores.of("api").send_signal(run_id, "approve", None, utcnow(), 10)

    assert await stores.of("w1").run_parked(run_id, None, ["approve"]) is False
    # Still held: the worker that tried to park it goes on writing.
    await stores.of("w1").task_waiting(run_id, NAP, None)


async def test_a_signal_is_taken_once_oldest_first_and_again_by_the_same_task(
    stores: Stores,
) -> None:
    run_id = await waiting_run(stores, steps=("nap", "other"))
    api = stores.of("api")
    await api.send_signal(run_id, "go", 1, utcnow(), 10)
    await api.send_signal(run_id, "go", 2, utcnow(), 10)
    await api.send_signal(run_id, "stop", 3, utcnow(), 10)
    store = stores.of("w1")

    first = await store.signal_taken(run_id, NAP, "go")
    again = await store.signal_taken(run_id, NAP, "go")  # resumed before its step finished
    other = await store.signal_taken(run_id, TaskKey("other"), "go")
    none_left = await store.signal_taken(run_id, TaskKey("third"), "go")

    assert again == first
    assert first is not None
    assert first.payload == 1
    assert other is not None
    assert other.payload == 2
    assert none_left is None


async def test_sending_a_signal_says_what_came_of_it(stores: Stores) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"))
    api = stores.of("api")
    await api.create(new_run("queued", definition_id))
    await api.create(new_run("ended", definition_id))
    await api.end("ended", RunStatus.CANCELLED, utcnow())
    now = utcnow()

    assert await api.send_signal("queued", "early", None, now, 2) is Sending.KEPT
    assert await api.send_signal("queued", "early", None, now, 2) is Sending.KEPT
    assert await api.send_signal("queued", "early", None, now, 2) is Sending.TOO_MANY
    assert await api.send_signal("ended", "late", None, now, 2) is Sending.RUN_ENDED
    assert await api.send_signal("nowhere", "x", None, now, 2) is Sending.UNKNOWN_RUN


async def test_a_stopped_single_process_store_resumes_its_runs_but_parked_ones_sleep_on(
    stores: Stores,
) -> None:
    run_id = await waiting_run(stores)
    until = utcnow() + timedelta(seconds=60)
    await stores.of("w1").run_parked(run_id, until, [])

    assert await stores.of("w2").expire_all(utcnow()) == 0

    assert await stores.of("w2").claim(utcnow(), LEASE, 10) == []


SLEEPY = """
flow: f
steps:
  - set: {id: before, values: {n: 1}}
  - sleep: {id: nap, seconds: 0.3}
  - set: {id: after, values: {n: "${before.n}"}}
outputs: {n: "${after.n}"}
"""


async def test_a_sleeping_run_parks_and_another_worker_finishes_it_after_its_time(
    stores: Stores,
) -> None:
    definition_id = await stores.flow("f", await stores.user("u1"), source=SLEEPY)
    first = stores.of("w1")
    await first.create(new_run("r1", definition_id, steps=("before", "nap", "after"), owner="w1"))
    registry = TaskRegistry()

    parked = await FlowExecutor(registry, store=first).run_checked(
        FlowExecutor(registry).load(SLEEPY), {}, "r1"
    )

    assert (parked.parked, parked.status) == (True, RunStatus.RUNNING)
    assert parked.parked_until is not None
    started = await first.get("r1")
    assert started is not None
    second = stores.of("w2")
    assert await second.claim(utcnow(), LEASE, 10) == []  # not yet
    claims: list[Any] = []

    async def woken() -> bool:
        claims.extend(await second.claim(utcnow(), LEASE, 10))
        return bool(claims)

    await polling.until(woken)
    assert utcnow() >= parked.parked_until
    executor = FlowExecutor(registry, store=second)
    finished = await executor.resume(executor.load(SLEEPY), "r1")
    assert (finished.status, finished.outputs) == (RunStatus.COMPLETED, {"n": 1})
    assert finished.executed_steps == ("before", "nap", "after")
    ended = await second.get("r1")
    assert ended is not None
    assert ended.started_at == started.started_at  # woken, not started again


async def child_of(stores: Stores, parent_id: str, definition_id: int, run_id: str) -> str:
    """A queued child run of `parent_id`'s step `nap`."""
    child = replace(new_run(run_id, definition_id), parent_run_id=parent_id, parent_step_id="nap")
    await stores.of("w1").create(child)
    return run_id


async def test_a_childs_end_wakes_its_parked_parent(stores: Stores) -> None:
    parent_id = await waiting_run(stores)
    definition_id = await stores.version("f")
    child_id = await child_of(stores, parent_id, definition_id, "child")
    assert await stores.of("w1").run_parked(parent_id, None, [], [child_id]) is True
    worker = stores.of("w2")
    (claimed,) = await worker.claim(utcnow(), LEASE, 10)
    assert claimed.run_id == child_id

    await worker.run_started(NewRun(child_id, "f", {}, ["a", "b"], ["a"], utcnow()))
    ended = RunEnd(RunStatus.COMPLETED, {"done": True}, None, utcnow())
    await worker.run_finished(child_id, ended)

    (woken,) = await stores.of("w3").claim(utcnow(), LEASE, 10)
    assert (woken.run_id, woken.woken) == (parent_id, True)
    parent = await stores.of("w3").get(parent_id)
    assert parent is not None
    assert [(child.run_id, child.step_id, child.status) for child in parent.children] == [
        (child_id, "nap", RunStatus.COMPLETED)
    ]


async def test_a_parent_whose_child_has_ended_does_not_park(stores: Stores) -> None:
    parent_id = await waiting_run(stores)
    definition_id = await stores.version("f")
    child_id = await child_of(stores, parent_id, definition_id, "child")
    await stores.of("api").end(child_id, RunStatus.CANCELLED, utcnow())

    assert await stores.of("w1").run_parked(parent_id, None, [], [child_id]) is False


async def test_the_runs_of_a_parent_list_only_its_children(stores: Stores) -> None:
    parent_id = await waiting_run(stores)
    definition_id = await stores.version("f")
    child_id = await child_of(stores, parent_id, definition_id, "child")
    await stores.of("w1").create(new_run("stranger", definition_id))

    page = await stores.of("api").page(
        flow=None, status=None, limit=10, after=None, viewer=None, parent=parent_id
    )

    assert [run.run_id for run in page] == [child_id]
    assert (page[0].parent_run_id, page[0].parent_step_id) == (parent_id, "nap")


async def test_a_parent_whose_child_is_gone_does_not_park(stores: Stores) -> None:
    """Its flow was deleted, and the child with it: waiting for it would be forever."""
    parent_id = await waiting_run(stores)

    assert await stores.of("w1").run_parked(parent_id, None, [], ["deleted-child"]) is False

"""The engine's transitions, on every run store: fan-out, the run's end, resume and
take-over from the steps a run kept."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from app.domain.clock import utcnow
from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus
from app.engine import FlowExecutor
from app.engine.store import NewRun, RunEnd, TaskFinish
from app.errors import LeaseLostError
from app.tasks import NonRetryableError, TaskRegistry
from tests.store.contract.conftest import LEASE, Stores, new_run

FLOW = """
flow: Resume
steps:
  - task: Count
    id: first
    inputs: {name: first}
  - task: Count
    id: second
    inputs: {name: second}
    depends_on: [first]
outputs: {first: "${first.calls}", second: "${second.calls}"}
"""


@pytest.fixture
def calls() -> Counter[str]:
    return Counter()


@pytest.fixture
def failures() -> dict[str, int]:
    """How many more times each step's task fails (without retries)."""
    return {"second": 1}


@pytest.fixture
def executor_of(calls: Counter[str], failures: dict[str, int]) -> Any:
    registry = TaskRegistry()

    @registry.register("Count")
    async def count(name: str) -> dict[str, Any]:
        calls[name] += 1
        if failures.get(name, 0) > 0:
            failures[name] -= 1
            raise NonRetryableError(f"{name} refuses")
        return {"calls": calls[name]}

    def executor_of(store: Any) -> FlowExecutor:
        return FlowExecutor(registry, store=store, env={})

    return executor_of


async def running_run(stores: Stores, owner: str, steps: tuple[str, ...]) -> str:
    definition_id = await stores.flow("f", await stores.user("u1"), source=FLOW)
    await stores.of(owner).create(new_run("r1", definition_id, steps=steps, owner=owner))
    return "r1"


async def test_a_failed_element_cancels_the_rest_of_its_fan_out(stores: Stores) -> None:
    store = stores.of("w1")
    run_id = await running_run(stores, "w1", ("each", "after"))
    now = utcnow()
    await store.run_started(NewRun(run_id, "f", {}, ["each", "after"], ["each"], now))
    await store.tasks_expanded(run_id, "each", 3)

    done = TaskFinish(TaskKey("each", 0), TaskStatus.COMPLETED, {"v": 0}, None, now)
    await store.task_finished(run_id, done)
    failure = RunError("each", "TaskError", "no")
    failed = TaskFinish(TaskKey("each", 1), TaskStatus.FAILED, None, failure, now)
    await store.task_finished(run_id, failed)

    run = await store.get(run_id)
    assert run is not None
    assert [(step.step_id, step.task_index, step.status) for step in run.steps] == [
        ("each", 0, TaskStatus.COMPLETED),
        ("after", 0, TaskStatus.PENDING),
        ("each", 1, TaskStatus.FAILED),
        ("each", 2, TaskStatus.CANCELLED),
    ]
    assert run.steps[0].outputs == {"v": 0}
    assert run.status is RunStatus.RUNNING


async def test_the_task_that_ends_a_run_ends_it_in_the_same_call(stores: Stores) -> None:
    store = stores.of("w1")
    run_id = await running_run(stores, "w1", ("a", "b", "c"))
    now = utcnow()
    await store.run_started(NewRun(run_id, "f", {}, ["a", "b", "c"], ["a"], now))
    await store.task_started(run_id, TaskKey("a"), 1, now)
    first = TaskFinish(TaskKey("a"), TaskStatus.COMPLETED, {"x": 1}, None, now, ["b"])
    await store.task_finished(run_id, first)
    middle = await store.get(run_id)
    assert middle is not None
    assert [step.status for step in middle.steps] == [
        TaskStatus.COMPLETED,
        TaskStatus.QUEUED,
        TaskStatus.PENDING,
    ]
    assert (middle.steps[0].attempts, middle.steps[0].started_at) == (1, now)

    ended = RunEnd(RunStatus.FAILED, None, RunError("b", "TaskError", "no"), now)
    error = RunError("b", "TaskError", "no")
    await store.task_finished(
        run_id, TaskFinish(TaskKey("b"), TaskStatus.FAILED, None, error, now, ended=ended)
    )

    run = await store.get(run_id)
    assert run is not None
    assert (run.status, run.error, run.remaining_steps) == (RunStatus.FAILED, error, 0)
    assert [step.status for step in run.steps] == [
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
    ]
    assert await stores.of("w2").claim(now, LEASE, 10) == []  # ended: nothing to take over


async def test_a_retried_run_keeps_its_finished_steps(
    stores: Stores, executor_of: Any, calls: Counter[str]
) -> None:
    store = stores.of("w1")
    run_id = await running_run(stores, "w1", ("first", "second"))
    executor = executor_of(store)
    definition = executor.load(FLOW)

    failed = await executor.run_checked(definition, {}, run_id)
    assert failed.status is RunStatus.FAILED
    claim = await store.restart(run_id, utcnow(), LEASE, 1)
    assert claim is not None
    resumed = await executor.resume(definition, run_id)

    assert (resumed.status, resumed.outputs) == (RunStatus.COMPLETED, {"first": 1, "second": 2})
    assert calls == Counter(first=1, second=2)  # first kept, not run again
    run = await store.get(run_id)
    assert run is not None
    assert [(step.step_id, step.status) for step in run.steps] == [
        ("first", TaskStatus.COMPLETED),
        ("second", TaskStatus.COMPLETED),
    ]


async def test_a_run_taken_over_resumes_where_its_worker_stopped(
    stores: Stores, executor_of: Any, calls: Counter[str], failures: dict[str, int]
) -> None:
    failures.clear()
    run_id = await running_run(stores, "w1", ("first", "second"))
    dead = stores.of("w1")
    now = utcnow()
    await dead.run_started(NewRun(run_id, "f", {}, ["first", "second"], ["first"], now))
    finished = TaskFinish(
        TaskKey("first"), TaskStatus.COMPLETED, {"calls": 7}, None, now, ["second"]
    )
    await dead.task_finished(run_id, finished)
    await dead.release([run_id], now)  # as its lease running out does

    heir = stores.of("w2")
    (claim,) = await heir.claim(utcnow(), LEASE, 10)
    assert claim.taken_over
    resumed = await executor_of(heir).resume(executor_of(heir).load(FLOW), run_id)

    assert resumed.outputs == {"first": 7, "second": 1}
    assert calls == Counter(second=1)  # first was kept from the dead worker's execution
    with pytest.raises(LeaseLostError):  # the dead worker's writes are refused
        await dead.run_finished(run_id, RunEnd(RunStatus.CANCELLED, None, None, now))

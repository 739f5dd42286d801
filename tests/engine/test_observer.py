"""The engine's observer: told of every attempt (and whether a retry follows) and of every
task's outcome; what tasks log is kept per attempt with the outcome."""

from __future__ import annotations

from typing import Any

from app.domain.runs import TaskKey, TaskStatus
from app.engine import FlowExecutor
from app.engine.limits import RunLimits
from app.engine.memory_store import InMemoryRunStore
from app.engine.observer import EngineObserver
from app.tasks import TaskContext, TaskRegistry

FLOW = """
flow: Observed
steps:
  - task: Flaky
    id: flaky
    retry: {max_attempts: 3, delay: 0}
  - set: {id: never, if: "${flaky.done} == false", values: {x: 1}}
outputs: {done: "${flaky.done}"}
"""


class Recorder(EngineObserver):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def attempt_started(self, run_id: str, flow: str, key: TaskKey, task: str, attempt: int) -> Any:
        return (flow, key.step_id, task, attempt)

    def attempt_ended(self, started: Any, status: TaskStatus, *, retried: bool) -> None:
        self.events.append(("attempt", *started, status, retried))

    def task_settled(self, flow: str, task: str, status: TaskStatus, seconds: float | None) -> None:
        self.events.append(("task", flow, task, status, seconds is None))


def flaky_registry(failures: int) -> TaskRegistry:
    registry = TaskRegistry()
    left = {"n": failures}

    @registry.register("Flaky")
    async def flaky(*, context: TaskContext) -> dict[str, Any]:
        context.logger.info("attempt %d begins", context.attempt)
        context.logger.debug("kept in the process's logs only")
        if left["n"]:
            left["n"] -= 1
            raise RuntimeError("not yet")
        return {"done": True}

    return registry


async def test_the_observer_sees_each_attempt_and_each_outcome() -> None:
    recorder = Recorder()
    executor = FlowExecutor(flaky_registry(2), observer=recorder)

    assert await executor.execute_flow(FLOW) == {"done": True}

    assert recorder.events == [
        ("attempt", "Observed", "flaky", "Flaky", 1, TaskStatus.FAILED, True),
        ("attempt", "Observed", "flaky", "Flaky", 2, TaskStatus.FAILED, True),
        ("attempt", "Observed", "flaky", "Flaky", 3, TaskStatus.COMPLETED, False),
        ("task", "Observed", "Flaky", TaskStatus.COMPLETED, False),
        ("task", "Observed", "set", TaskStatus.SKIPPED, True),
    ]


async def test_each_attempt_keeps_what_its_task_logged() -> None:
    store = InMemoryRunStore()
    executor = FlowExecutor(flaky_registry(1), store=store)

    result = await executor.run(FLOW)

    logs = store.get(result.run_id).tasks[TaskKey("flaky")].logs
    assert [(log.attempt, [line.message for line in log.lines]) for log in logs] == [
        (1, ["attempt 1 begins"]),
        (2, ["attempt 2 begins"]),
    ]
    assert not store.get(result.run_id).tasks[TaskKey("never")].logs


async def test_what_an_attempt_keeps_is_bounded() -> None:
    registry = TaskRegistry()

    @registry.register("Chatty")
    async def chatty(*, context: TaskContext) -> dict[str, Any]:
        for index in range(1000):
            context.logger.warning("line %d of many", index)
        return {}

    store = InMemoryRunStore()
    executor = FlowExecutor(registry, store=store, limits=RunLimits(max_task_log_bytes=1024))

    result = await executor.run("flow: Chatty\nsteps:\n  - task: Chatty\n    id: talk\n")

    (log,) = store.get(result.run_id).tasks[TaskKey("talk")].logs
    assert log.truncated
    assert 5 < len(log.lines) < 30
    assert log.lines[0].level == "warning"
    assert "MAX_TASK_LOG_BYTES" in log.lines[-1].message


class ProgressRecorder(EngineObserver):
    """What a progress display hears: steps starting and settling, a fan-out's elements."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def step_started(self, run_id: str, step_id: str) -> None:
        self.events.append(("started", step_id))

    def elements_expanded(self, run_id: str, step_id: str, count: int) -> None:
        self.events.append(("expanded", step_id, count))

    def element_settled(self, run_id: str, key: TaskKey, status: TaskStatus) -> None:
        self.events.append(("element", key.step_id, status))

    def step_settled(self, run_id: str, step_id: str, status: TaskStatus) -> None:
        self.events.append(("settled", step_id, status))


async def test_the_observer_follows_each_step_and_a_fan_outs_elements() -> None:
    recorder = ProgressRecorder()
    executor = FlowExecutor(observer=recorder)
    flow = """
flow: Progress
steps:
  - set: {id: first, values: {items: [1, 2, 3]}}
  - set: {id: each, for_each: "${first.items}", max_concurrency: 1, values: {x: "${item}"}}
  - set: {id: never, if: "${len(each.x)} == 0", values: {x: 1}}
  - fail: {id: boom, depends_on: [never], message: no luck}
"""

    result = await executor.run(flow)

    assert result.error is not None
    assert recorder.events == [
        ("started", "first"),
        ("settled", "first", TaskStatus.COMPLETED),
        ("started", "each"),
        ("expanded", "each", 3),
        ("element", "each", TaskStatus.COMPLETED),
        ("element", "each", TaskStatus.COMPLETED),
        ("element", "each", TaskStatus.COMPLETED),
        ("settled", "each", TaskStatus.COMPLETED),
        ("settled", "never", TaskStatus.SKIPPED),
        ("started", "boom"),
        ("settled", "boom", TaskStatus.FAILED),
    ]

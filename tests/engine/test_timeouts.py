"""How long an attempt may run: its step's `timeout`, else `RunLimits.default_step_timeout`
(the service's MAX_STEP_TIMEOUT_SECONDS; none in library use)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from app.domain.runs import RunStatus, TaskKey
from app.engine import FlowExecutor
from app.engine.limits import RunLimits
from app.engine.memory_store import InMemoryRunStore
from app.engine.run import RunResult
from app.tasks import TaskContext, TaskRegistry

DEADLINE = 5.0  # seconds: without a timeout the run would never end; the test fails instead
TINY = 0.05  # seconds: the default timeout of these tests


@pytest.fixture
def seen() -> list[TaskContext]:
    return []


@pytest.fixture
def registry(seen: list[TaskContext]) -> TaskRegistry:
    registry = TaskRegistry()

    @registry.register("Hang")
    async def hang(*, context: TaskContext) -> dict[str, Any]:
        """Never returns."""
        seen.append(context)
        await asyncio.Event().wait()
        return {}

    @registry.register("OwnTimeout")
    async def own_timeout() -> dict[str, Any]:
        """Fails with a TimeoutError of its own, before any deadline."""
        raise TimeoutError

    @registry.register("Quick")
    async def quick(*, context: TaskContext) -> dict[str, Any]:
        seen.append(context)
        return {"done": True}

    return registry


def service_like(registry: TaskRegistry, store: InMemoryRunStore) -> FlowExecutor:
    """As the service runs flows, with a tiny MAX_STEP_TIMEOUT_SECONDS."""
    return FlowExecutor(registry, store=store, limits=RunLimits(default_step_timeout=TINY))


async def run(executor: FlowExecutor, source: str) -> RunResult:
    async with asyncio.timeout(DEADLINE):
        return await executor.run(source)


async def test_a_step_without_timeout_fails_after_the_default_and_is_retried(
    registry: TaskRegistry, seen: list[TaskContext]
) -> None:
    store = InMemoryRunStore()
    flow = """
flow: Hangs
steps:
  - task: Hang
    id: h
    retry: {max_attempts: 2, delay: 0}
"""
    started = time.monotonic()
    result = await run(service_like(registry, store), flow)

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert (result.error.step, result.error.type) == ("h", "TimeoutError")
    assert result.error.message == (
        "attempt exceeded 0.05s, the longest a step without `timeout` may run "
        "(setting MAX_STEP_TIMEOUT_SECONDS)"
    )
    assert store.get(result.run_id).tasks[TaskKey("h")].attempts == 2  # timeouts are retried
    assert [context.timeout for context in seen] == [TINY, TINY]
    assert time.monotonic() - started >= 2 * TINY


async def test_each_element_of_a_fan_out_gets_the_default_timeout(registry: TaskRegistry) -> None:
    flow = """
flow: HangsEach
steps:
  - task: Hang
    id: h
    for_each: [1, 2, 3]
"""
    result = await run(service_like(registry, InMemoryRunStore()), flow)

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.type == "TimeoutError"


async def test_a_steps_own_timeout_wins_over_the_default(
    registry: TaskRegistry, seen: list[TaskContext]
) -> None:
    executor = FlowExecutor(registry, limits=RunLimits(default_step_timeout=3600))
    flow = "flow: Own\nsteps:\n  - task: Hang\n    id: h\n    timeout: 0.05\n"

    result = await run(executor, flow)

    assert result.error is not None
    assert result.error.type == "TimeoutError"
    assert result.error.message == "attempt exceeded the step's timeout of 0.05s"
    assert seen[0].timeout == 0.05


async def test_a_tasks_own_timeout_error_is_not_taken_for_the_attempts(
    registry: TaskRegistry,
) -> None:
    flow = "flow: Own\nsteps:\n  - task: OwnTimeout\n    id: t\n"

    result = await run(service_like(registry, InMemoryRunStore()), flow)

    assert result.error is not None
    assert (result.error.type, result.error.message) == ("TimeoutError", "TimeoutError")


async def test_library_use_has_no_default_timeout(
    registry: TaskRegistry, seen: list[TaskContext]
) -> None:
    executor = FlowExecutor(registry)

    result = await run(executor, "flow: Lib\nsteps:\n  - task: Quick\n    id: q\n")

    assert executor.limits.default_step_timeout is None
    assert result.status is RunStatus.COMPLETED
    assert seen[0].timeout is None


async def test_a_sleep_longer_than_a_durable_wait_may_last_fails_at_once_saying_why(
    registry: TaskRegistry,
) -> None:
    store = InMemoryRunStore()
    limits = RunLimits(default_step_timeout=60, max_durable_wait_seconds=3600)
    executor = FlowExecutor(registry, store=store, limits=limits)
    flow = "flow: Nap\nsteps:\n  - sleep: {id: nap, seconds: 7200}\n"

    started = time.monotonic()
    result = await run(executor, flow)

    assert time.monotonic() - started < 1
    assert result.error is not None
    assert (result.error.step, result.error.type) == ("nap", "WaitTooLongError")
    assert result.error.message.startswith("sleep would wait until ")
    assert result.error.message.endswith("; MAX_DURABLE_WAIT_SECONDS allows 3600 seconds")


async def test_a_sleep_is_no_attempt_the_step_timeout_does_not_cut_it(
    registry: TaskRegistry,
) -> None:
    executor = FlowExecutor(registry, limits=RunLimits(default_step_timeout=0.01))
    flow = "flow: Nap\nsteps:\n  - sleep: {id: nap, seconds: 0.05, timeout: 0.01}\n"

    result = await run(executor, flow)

    assert result.status is RunStatus.COMPLETED

"""Durable waits in library use: `sleep` and `wait_for` wait in memory (the in-memory store
cannot park a run), with the outputs and the task states the service records."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from app.domain.clock import utcnow
from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.engine import FlowExecutor
from app.engine.memory_store import InMemoryRunStore
from tests import polling

DEADLINE = 10


async def test_a_sleep_waits_its_seconds_then_the_run_goes_on(executor: FlowExecutor) -> None:
    flow = """
flow: Nap
steps:
  - sleep: {id: nap, seconds: 0.2}
  - set: {id: after, values: {done: true}}
outputs: {done: "${after.done}"}
"""
    started = time.monotonic()
    async with asyncio.timeout(DEADLINE):
        result = await executor.run(flow)

    assert result.status is RunStatus.COMPLETED, result.error
    assert result.outputs == {"done": True}
    assert time.monotonic() - started >= 0.2


async def test_a_sleep_until_a_past_time_ends_at_once(executor: FlowExecutor) -> None:
    flow = """
flow: Past
steps:
  - sleep: {id: nap, until: "2020-01-01T00:00:00Z"}
"""
    async with asyncio.timeout(1):
        result = await executor.run(flow)

    assert result.status is RunStatus.COMPLETED


async def test_a_sleep_until_a_time_given_by_the_inputs_waits_for_it(
    executor: FlowExecutor,
) -> None:
    flow = """
flow: Until
inputs: {at: {type: string}}
steps:
  - sleep: {id: nap, until: "${inputs.at}"}
"""
    at = utcnow() + timedelta(seconds=0.2)
    async with asyncio.timeout(DEADLINE):
        result = await executor.run(flow, {"at": at.isoformat()})

    assert result.status is RunStatus.COMPLETED
    assert utcnow() >= at


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{id: nap}", "sleep needs either `seconds` or `until`, not both"),
        ("{id: nap, seconds: -1}", "`seconds` must be a number of seconds from 0"),
        ('{id: nap, until: "tomorrow"}', "`until` must be an ISO 8601 time, not 'tomorrow'"),
    ],
)
async def test_a_sleep_with_wrong_arguments_fails_its_step_saying_why(
    executor: FlowExecutor, arguments: str, message: str
) -> None:
    result = await executor.run(f"flow: Bad\nsteps:\n  - sleep: {arguments}\n")

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.step == "nap"
    assert result.error.message.startswith(message)


async def test_a_wait_for_takes_the_signal_sent_while_it_waits(
    executor: FlowExecutor, store: InMemoryRunStore
) -> None:
    flow = """
flow: Approve
steps:
  - wait_for: {id: approval, signal: approve}
outputs: {approved: "${approval.payload.yes}", late: "${approval.timed_out}"}
"""
    running = asyncio.create_task(executor.run(flow, run_id="r1"))
    await polling.until(
        lambda: (
            "r1" in store.runs
            and store.get("r1").tasks[TaskKey("approval")].status is TaskStatus.WAITING
        )
    )

    store.signal("r1", "approve", {"yes": True})

    async with asyncio.timeout(DEADLINE):
        result = await running
    assert result.outputs == {"approved": True, "late": False}


async def test_a_signal_sent_before_its_step_is_reached_is_kept_for_it(
    executor: FlowExecutor, store: InMemoryRunStore
) -> None:
    flow = """
flow: Early
steps:
  - sleep: {id: first, seconds: 0.2}
  - wait_for: {id: approval, signal: approve}
outputs: {payload: "${approval.payload}"}
"""
    running = asyncio.create_task(executor.run(flow, run_id="r2"))
    await polling.until(lambda: "r2" in store.runs)

    store.signal("r2", "approve", "early")

    async with asyncio.timeout(DEADLINE):
        result = await running
    assert result.outputs == {"payload": "early"}


async def test_a_wait_for_that_times_out_completes_with_timed_out(executor: FlowExecutor) -> None:
    flow = """
flow: Late
steps:
  - wait_for: {id: approval, signal: approve, timeout: 0.1}
outputs: {payload: "${approval.payload}", late: "${approval.timed_out}"}
"""
    async with asyncio.timeout(DEADLINE):
        result = await executor.run(flow)

    assert result.status is RunStatus.COMPLETED
    assert result.outputs == {"payload": None, "late": True}


async def test_a_signal_is_taken_by_one_waiting_step_only(
    executor: FlowExecutor, store: InMemoryRunStore
) -> None:
    flow = """
flow: Twice
mode: dag
steps:
  - wait_for: {id: a, signal: go, timeout: 0.5}
  - wait_for: {id: b, signal: go, timeout: 0.5}
outputs: {a: "${a.timed_out}", b: "${b.timed_out}"}
"""
    running = asyncio.create_task(executor.run(flow, run_id="r3"))
    await polling.until(lambda: "r3" in store.runs)

    store.signal("r3", "go")

    async with asyncio.timeout(DEADLINE):
        result = await running
    assert result.outputs is not None
    assert sorted(result.outputs.values()) == [False, True]


async def test_a_waiting_step_waits_while_other_steps_run(executor: FlowExecutor) -> None:
    flow = """
flow: Side
mode: dag
steps:
  - sleep: {id: nap, seconds: 0.1}
  - task: Track
    id: busy
    inputs: {pause: 0.3}
  - set: {id: after_nap, depends_on: [nap], values: {at: "${nap.status}"}}
"""
    async with asyncio.timeout(DEADLINE):
        result = await executor.run(flow)

    assert result.status is RunStatus.COMPLETED
    assert result.executed_steps[:2] == ("nap", "after_nap")  # not held back by `busy`

"""Fan-out: one task per element, bounded concurrency, outputs in element order."""

from __future__ import annotations

import pytest

from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.engine import FlowExecutor
from app.engine.limits import RunLimits
from app.engine.memory_store import InMemoryRunStore
from tests.engine.conftest import Probe


async def test_outputs_are_collected_in_element_order(
    executor: FlowExecutor, store: InMemoryRunStore
) -> None:
    flow = """
flow: Fan
inputs: {items: array}
steps:
  - task: Track
    id: each
    for_each: "${inputs.items}"
    as: n
    inputs: {value: "${n * 10 + index}", pause: "${0.02 if n == 1 else 0}"}
outputs: {values: "${each.value}"}
"""
    result = await executor.run(flow, {"items": [1, 2, 3]})

    assert result.outputs == {"values": [10, 21, 32]}
    tasks = store.get(result.run_id).tasks
    assert [tasks[TaskKey("each", i)].outputs for i in range(3)] == [
        {"value": 10},
        {"value": 21},
        {"value": 32},
    ]


async def test_max_concurrency_bounds_parallel_elements(
    executor: FlowExecutor, probe: Probe
) -> None:
    flow = """
flow: Bounded
steps:
  - task: Track
    id: each
    for_each: "${[1, 2, 3, 4, 5, 6, 7, 8]}"
    max_concurrency: 3
    inputs: {value: "${item}", pause: 0.01}
"""
    await executor.execute_flow(flow)

    assert probe.peak == 3
    assert sorted(probe.seen) == [1, 2, 3, 4, 5, 6, 7, 8]


async def test_empty_list_completes_with_empty_outputs(executor: FlowExecutor) -> None:
    flow = """
flow: Empty
steps:
  - task: Echo
    id: each
    for_each: "${[]}"
    outputs: [value]
    inputs: {value: "${item}"}
outputs: {values: "${each.value}"}
"""
    assert await executor.execute_flow(flow) == {"values": []}


async def test_failing_element_fails_the_step_and_cancels_the_rest(
    executor: FlowExecutor, store: InMemoryRunStore
) -> None:
    flow = """
flow: FanFail
steps:
  - fail:
      id: each
      for_each: "${[1, 2, 3, 4]}"
      max_concurrency: 1
      message: "bad ${item}"
"""
    result = await executor.run(flow)

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.message == "element 0: bad 1"
    statuses = [store.get(result.run_id).tasks[TaskKey("each", i)].status for i in range(4)]
    assert statuses == [TaskStatus.FAILED] + [TaskStatus.CANCELLED] * 3


async def test_for_each_over_a_non_list_fails_clearly(executor: FlowExecutor) -> None:
    flow = """
flow: NotAList
steps:
  - set: {id: each, for_each: "${42}", values: {v: 1}}
"""
    result = await executor.run(flow)

    assert result.error is not None
    assert "for_each must give a list, got int" in result.error.message


async def test_fan_out_is_bounded(executor: FlowExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "limits", RunLimits(max_fan_out=3))
    flow = """
flow: TooWide
steps:
  - set: {id: each, for_each: "${[1, 2, 3, 4]}", values: {v: 1}}
"""
    result = await executor.run(flow)

    assert result.error is not None
    assert result.error.type == "FanOutTooLargeError"
    assert "at most 3" in result.error.message

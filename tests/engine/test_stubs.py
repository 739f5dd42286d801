"""Stubbed steps: given outputs instead of running their task (`FlowExecutor.run(stubs=...)`)."""

from __future__ import annotations

import pytest

from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.engine import FlowExecutor
from app.engine.memory_store import InMemoryRunStore
from app.errors import StubError
from tests.engine.conftest import Probe

FLOW = """
flow: Stubbed
inputs:
  - {name: n, type: integer, required: true}
steps:
  - task: Echo
    id: fetch
    inputs: {value: "${inputs.n}"}
  - fail: {id: broken, if: "${fetch.value} > 100", message: "too big"}
  - set: {id: double, values: {x: "${fetch.value * 2}"}}
  - set:
      id: each
      for_each: ${[1, 2]}
      as: item
      values: {y: "${item + double.x}"}
outputs:
  fetched: ${fetch.value}
  doubled: ${double.x}
  each: ${each.y}
"""


async def test_a_stubbed_step_does_not_run_and_later_steps_see_its_outputs(
    executor: FlowExecutor, probe: Probe
) -> None:
    result = await executor.run(FLOW, {"n": 1}, stubs={"fetch": {"value": 20}})

    assert result.status is RunStatus.COMPLETED
    assert probe.calls["Echo"] == 0
    assert result.outputs == {"fetched": 20, "doubled": 40, "each": [41, 42]}


async def test_a_stubbed_step_counts_as_completed_whatever_its_task_would_do(
    executor: FlowExecutor, store: InMemoryRunStore
) -> None:
    stubs = {"fetch": {"value": 500}, "broken": {"reason": "stubbed"}}

    result = await executor.run(FLOW, {"n": 1}, stubs=stubs)

    assert result.status is RunStatus.COMPLETED
    assert "broken" in result.executed_steps
    task = store.get(result.run_id).tasks[TaskKey("broken")]
    assert (task.status, task.outputs, task.attempts) == (
        TaskStatus.COMPLETED,
        {"reason": "stubbed"},
        0,
    )


async def test_a_fan_out_is_stubbed_with_its_collected_outputs(
    executor: FlowExecutor,
) -> None:
    result = await executor.run(FLOW, {"n": 1}, stubs={"each": {"y": ["a", "b", "c"]}})

    assert result.outputs == {"fetched": 1, "doubled": 2, "each": ["a", "b", "c"]}


async def test_stubs_that_do_not_fit_the_flow_are_refused_before_the_run(
    executor: FlowExecutor, store: InMemoryRunStore, probe: Probe
) -> None:
    declared = FLOW.replace("id: fetch\n", "id: fetch\n    outputs: [value]\n")

    with pytest.raises(StubError) as refused:
        await executor.run(
            declared,
            {"n": 1},
            stubs={"nope": {}, "double": [1], "fetch": {"other": 1}, "each": {"y": float("nan")}},
        )

    messages = {problem.loc: problem.msg for problem in refused.value.problems}
    assert "the flow has no step 'nope'" in messages["stubs", "nope"]
    assert messages["stubs", "double"] == "a stub is a mapping of the step's outputs"
    assert "declares the output(s) value" in messages["stubs", "fetch"]
    assert "cannot be stored" in messages["stubs", "each"]
    assert store.runs == {}
    assert probe.calls["Echo"] == 0

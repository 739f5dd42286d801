"""Sequential and DAG order, conditions, skips and outputs."""

from __future__ import annotations

import pytest

from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.engine import FlowExecutor
from app.engine.memory_store import InMemoryRunStore
from app.errors import FlowFailedError, InputValidationError
from tests.engine.conftest import Probe

CHAIN = """
flow: Chain
inputs:
  - {name: n, type: integer, required: true}
steps:
  - set: {id: a, values: {x: "${inputs.n + 1}"}}
  - set: {id: b, values: {y: "${a.x * 2}", label: "n=${inputs.n}"}}
  - task: Echo
    id: c
    inputs: {value: [${a.x}, ${b.y}]}
outputs:
  - {name: result, value: "${c.value}"}
  - {name: label, value: "${b.label}"}
"""


async def test_sequential_chain_passes_outputs_forward(executor: FlowExecutor) -> None:
    outputs = await executor.execute_flow(CHAIN, {"n": 4})

    assert outputs == {"result": [5, 10], "label": "n=4"}


async def test_mapping_forms_of_inputs_and_outputs(executor: FlowExecutor) -> None:
    flow = """
flow: Mapped
inputs: {name: {type: string, default: world}, times: integer}
steps:
  - set: {id: greet, values: {text: "hello ${inputs.name}"}}
outputs: {text: "${greet.text}", times: "${inputs.times}"}
"""
    assert await executor.execute_flow(flow, {}) == {"text": "hello world", "times": None}


async def test_run_records_every_step_in_the_store(
    executor: FlowExecutor, store: InMemoryRunStore
) -> None:
    result = await executor.run(CHAIN, {"n": 1})

    record = store.get(result.run_id)
    assert record.status is RunStatus.COMPLETED
    assert [task.status for task in record.tasks.values()] == [TaskStatus.COMPLETED] * 3
    assert record.tasks[TaskKey("b")].outputs == {"y": 4, "label": "n=1"}
    assert record.remaining_steps == 0
    assert record.outputs == {"result": [2, 4], "label": "n=1"}


async def test_false_condition_skips_step_with_null_outputs_and_dependents_run(
    executor: FlowExecutor, store: InMemoryRunStore
) -> None:
    flow = """
flow: Skips
inputs: {cached: boolean}
steps:
  - set: {id: check, values: {exists: "${inputs.cached}"}}
  - set: {id: fetch, values: {row: fresh}, if: "not ${check.exists}"}
  - set: {id: after, values: {seen: "${fetch.row}", state: "${fetch.status}"}}
outputs: {seen: "${after.seen}", status: "${after.state}"}
"""
    hit = await executor.run(flow, {"cached": True})
    miss = await executor.run(flow, {"cached": False})

    assert hit.outputs == {"seen": None, "status": "skipped"}
    assert store.get(hit.run_id).tasks[TaskKey("fetch")].status is TaskStatus.SKIPPED
    assert miss.outputs == {"seen": "fresh", "status": "completed"}


async def test_dag_runs_independent_steps_concurrently(
    executor: FlowExecutor, store: InMemoryRunStore, probe: Probe
) -> None:
    diamond = """
flow: Diamond
mode: dag
steps:
  - set: {id: top, values: {v: 1}}
  - task: Track
    id: left
    inputs: {value: "${top.v}", pause: 0.05}
  - task: Track
    id: right
    inputs: {value: "${top.v + 1}", pause: 0.05}
  - set: {id: bottom, values: {sum: "${left.value + right.value}"}}
outputs: {sum: "${bottom.sum}"}
"""
    result = await executor.run(diamond)

    assert result.outputs == {"sum": 3}
    tasks = store.get(result.run_id).tasks
    left, right, top, bottom = (tasks[TaskKey(s)] for s in ("left", "right", "top", "bottom"))
    assert probe.peak == 2  # both branches were inside their task at once
    assert left.started_at
    assert right.started_at
    assert left.finished_at
    assert right.finished_at
    assert left.started_at < right.finished_at
    assert right.started_at < left.finished_at
    assert top.finished_at
    assert bottom.started_at
    assert top.finished_at <= min(left.started_at, right.started_at)
    assert bottom.started_at >= max(left.finished_at, right.finished_at)


async def test_sequential_mode_never_overlaps_steps(executor: FlowExecutor, probe: Probe) -> None:
    flow = """
flow: OneByOne
steps:
  - task: Track
    id: first
    inputs: {pause: 0.01}
  - task: Track
    id: second
    inputs: {pause: 0.01}
"""
    await executor.execute_flow(flow)

    assert probe.peak == 1


async def test_depends_on_orders_dag_steps_without_references(
    executor: FlowExecutor, probe: Probe
) -> None:
    flow = """
flow: Ordered
mode: dag
steps:
  - task: Echo
    id: second
    inputs: {value: 2}
    depends_on: [first]
  - task: Echo
    id: first
    inputs: {value: 1}
"""
    await executor.execute_flow(flow)

    assert probe.seen == [1, 2]


async def test_sync_task_functions_run(executor: FlowExecutor) -> None:
    flow = """
flow: Sync
steps:
  - task: Blocking
    id: b
    inputs: {value: 7}
outputs: {value: "${b.value}"}
"""
    assert await executor.execute_flow(flow) == {"value": 7}


async def test_inputs_are_validated_before_anything_runs(
    executor: FlowExecutor, store: InMemoryRunStore, probe: Probe
) -> None:
    with pytest.raises(InputValidationError) as caught:
        await executor.execute_flow(CHAIN, {"n": "four", "extra": 1})

    messages = {problem.loc: problem.msg for problem in caught.value.problems}
    assert "must be an integer" in messages[("inputs", "n")]
    assert "unknown input 'extra'" in messages[("inputs", "extra")]
    assert not store.runs
    assert probe.calls["Echo"] == 0


async def test_documented_input_coercions(executor: FlowExecutor) -> None:
    flow = """
flow: Coerce
inputs:
  i: integer
  f: number
  b: boolean
steps:
  - set: {id: s, values: {i: "${inputs.i}", f: "${inputs.f}", b: "${inputs.b}"}}
outputs: {i: "${s.i}", f: "${s.f}", b: "${s.b}"}
"""
    outputs = await executor.execute_flow(flow, {"i": "42", "f": "2.5", "b": "TRUE"})

    assert outputs == {"i": 42, "f": 2.5, "b": True}
    with pytest.raises(InputValidationError, match="must be a boolean"):
        await executor.execute_flow(flow, {"b": 1})
    with pytest.raises(InputValidationError, match="must be an integer"):
        await executor.execute_flow(flow, {"i": True})


async def test_output_expression_error_fails_the_run(executor: FlowExecutor) -> None:
    flow = """
flow: BadOutput
steps:
  - set: {id: s, values: {items: []}}
outputs: {first: "${s.items[0]}"}
"""
    with pytest.raises(FlowFailedError) as caught:
        await executor.execute_flow(flow)

    assert caught.value.error.step is None
    assert "output 'first'" in caught.value.error.message


async def test_same_source_is_parsed_once(executor: FlowExecutor) -> None:
    assert executor.load(CHAIN) is executor.load(CHAIN)


async def test_context_exposes_run_id_and_flow(executor: FlowExecutor) -> None:
    flow = """
flow: Ctx
steps:
  - set:
      id: s
      values: {run: "${context.run_id}", flow: "${context.flow}", attempt: "${context.attempt}"}
outputs: {run: "${s.run}", flow: "${s.flow}", attempt: "${s.attempt}"}
"""
    result = await executor.run(flow)

    assert result.outputs == {"run": result.run_id, "flow": "Ctx", "attempt": 1}

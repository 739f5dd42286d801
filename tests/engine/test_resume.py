"""Resuming a run: finished steps are kept, not run again; the rest runs anew."""

from __future__ import annotations

from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.engine import FlowExecutor
from app.engine.attempts import TaskOutcome
from app.engine.memory_store import InMemoryRunStore
from app.engine.resume import kept_on_retry, steps_run_again
from app.tasks import TaskRegistry
from tests.engine.conftest import Probe

FLOW = """
flow: Resume
mode: dag
steps:
  - task: Flaky
    id: first
    inputs: {name: first}
  - task: Flaky
    id: second
    inputs: {name: second}
    depends_on: [first]
  - set: {id: skipped, values: {v: 1}, if: "${first.calls > 5}"}
  - task: Flaky
    id: independent
    inputs: {name: independent}
outputs: {first: "${first.calls}", second: "${second.calls}"}
"""


def previous_outcomes(store: InMemoryRunStore, run_id: str) -> dict[str, TaskOutcome]:
    return {
        key.step_id: TaskOutcome(key, task.status, dict(task.outputs or {}), task.error)
        for key, task in store.get(run_id).tasks.items()
    }


async def test_retry_keeps_completed_steps_and_reruns_the_failed_ones(
    registry: TaskRegistry, probe: Probe, store: InMemoryRunStore
) -> None:
    executor = FlowExecutor(registry, store=store, env={})
    probe.failures_left["second"] = 1
    failed = await executor.run(FLOW)
    assert failed.status is RunStatus.FAILED

    definition = executor.load(FLOW)
    kept = kept_on_retry(definition, previous_outcomes(store, failed.run_id))
    assert {"first", "independent"} <= set(kept)
    assert "second" not in kept
    stored = await store.load(failed.run_id)
    # What a retry counts: `skipped` was not yet decided when `second` failed.
    assert steps_run_again(definition, stored.steps) == ["second", "skipped"]

    result = await executor.resume(definition, failed.run_id)

    assert result.status is RunStatus.COMPLETED
    assert result.outputs == {"first": 1, "second": 2}
    assert probe.calls["first"] == 1  # kept, not run again
    assert probe.calls["independent"] == 1
    assert probe.calls["second"] == 2
    assert store.get(failed.run_id).tasks[TaskKey("second")].status is TaskStatus.COMPLETED


def test_a_step_whose_dependency_reruns_is_not_kept(registry: TaskRegistry) -> None:
    definition = FlowExecutor(registry, env={}).load(FLOW)
    previous = {
        "first": TaskOutcome(TaskKey("first"), TaskStatus.FAILED),
        "second": TaskOutcome(TaskKey("second"), TaskStatus.CANCELLED),
        "skipped": TaskOutcome(TaskKey("skipped"), TaskStatus.SKIPPED),
        "independent": TaskOutcome(TaskKey("independent"), TaskStatus.COMPLETED, {"calls": 1}),
    }

    assert set(kept_on_retry(definition, previous)) == {"independent"}
    previous["first"] = TaskOutcome(TaskKey("first"), TaskStatus.COMPLETED, {"calls": 1})
    assert set(kept_on_retry(definition, previous)) == {"first", "skipped", "independent"}


def test_a_long_chain_listed_in_any_order_is_decided_without_recursion() -> None:
    # Each step reads the one listed after it: deciding the first walks the whole chain.
    count = 3000
    lines = ["flow: Reversed", "mode: dag", "steps:"]
    lines += [
        f'  - set: {{id: s{index}, values: {{v: "${{s{index + 1}.v}}"}}}}'
        for index in range(count - 1)
    ]
    lines.append(f"  - set: {{id: s{count - 1}, values: {{v: 1}}}}")
    definition = FlowExecutor(env={}).load("\n".join(lines) + "\n")
    previous = {
        step.id: TaskOutcome(TaskKey(step.id), TaskStatus.COMPLETED, {"v": 1})
        for step in definition.steps
    }

    assert len(kept_on_retry(definition, previous)) == count
    previous["s2000"] = TaskOutcome(TaskKey("s2000"), TaskStatus.FAILED)
    assert set(kept_on_retry(definition, previous)) == {f"s{index}" for index in range(2001, count)}

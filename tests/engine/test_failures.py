"""Retries, timeouts, on_error policies and handler steps."""

from __future__ import annotations

import random

import pytest

from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.dsl.models import RetryPolicy
from app.engine import FlowExecutor
from app.engine.memory_store import InMemoryRunStore
from app.engine.retries import is_retryable, retry_delay
from app.errors import ExpressionEvaluationError, FlowFailedError, NonRetryableError
from app.tasks import TaskRegistry
from tests.engine.conftest import Probe


def flaky_flow(retry: str, error: str = "RuntimeError", on_error: str = "fail") -> str:
    return f"""
flow: Flaky
steps:
  - task: Flaky
    id: f
    inputs: {{name: f, error: {error}}}
    retry: {retry}
    on_error: {on_error}
outputs: {{calls: "${{f.calls}}", status: "${{f.status}}", error: "${{f.error}}"}}
"""


async def test_failed_attempts_are_retried_until_success(
    executor: FlowExecutor, store: InMemoryRunStore, probe: Probe
) -> None:
    probe.failures_left["f"] = 2

    result = await executor.run(flaky_flow("{max_attempts: 3, delay: 0}"))

    assert result.status is RunStatus.COMPLETED
    assert result.outputs
    assert result.outputs["calls"] == 3
    assert store.get(result.run_id).tasks[TaskKey("f")].attempts == 3


async def test_retries_stop_at_max_attempts_and_fail_the_run(
    executor: FlowExecutor, probe: Probe
) -> None:
    probe.failures_left["f"] = 5

    with pytest.raises(FlowFailedError) as caught:
        await executor.execute_flow(flaky_flow("{max_attempts: 2, delay: 0}"))

    assert probe.calls["f"] == 2
    assert caught.value.error.step == "f"
    assert caught.value.error.type == "RuntimeError"
    assert caught.value.error.message == "f broke"


async def test_non_retryable_error_is_not_retried(executor: FlowExecutor, probe: Probe) -> None:
    probe.failures_left["f"] = 1

    with pytest.raises(FlowFailedError, match="refuses"):
        await executor.execute_flow(flaky_flow("{max_attempts: 5, delay: 0}", "NonRetryableError"))

    assert probe.calls["f"] == 1


async def test_retry_on_limits_retries_to_listed_error_types(
    executor: FlowExecutor, probe: Probe
) -> None:
    probe.failures_left["f"] = 1
    with pytest.raises(FlowFailedError, match="ValueError"):
        await executor.execute_flow(
            flaky_flow("{max_attempts: 3, delay: 0, retry_on: [RuntimeError]}", "ValueError")
        )
    assert probe.calls["f"] == 1

    probe.failures_left["f"] = 1
    await executor.execute_flow(flaky_flow("{max_attempts: 3, delay: 0, retry_on: [RuntimeError]}"))
    assert probe.calls["f"] == 3  # one failure, then success, on top of the earlier call


async def test_flow_defaults_apply_to_steps(executor: FlowExecutor, probe: Probe) -> None:
    probe.failures_left["f"] = 2
    flow = """
flow: Defaults
defaults:
  retry: {max_attempts: 3, delay: 0}
steps:
  - task: Flaky
    id: f
    inputs: {name: f}
outputs: {calls: "${f.calls}"}
"""
    assert await executor.execute_flow(flow) == {"calls": 3}


async def test_store_sees_each_failed_attempt_with_its_retry_time(
    registry: TaskRegistry, probe: Probe
) -> None:
    seen: list[tuple[int, float]] = []

    class RecordingStore(InMemoryRunStore):
        async def attempt_failed(self, run_id, key, attempt, error, retry_at, log=None):  # type: ignore[no-untyped-def]
            seen.append((attempt, (retry_at - self.get(run_id).started_at).total_seconds()))
            await super().attempt_failed(run_id, key, attempt, error, retry_at, log)

    recording = FlowExecutor(registry, store=RecordingStore())
    probe.failures_left["f"] = 2

    await recording.execute_flow(flaky_flow("{max_attempts: 3, delay: 0.01, backoff: 3}"))

    assert [attempt for attempt, _ in seen] == [1, 2]
    assert seen[1][1] - seen[0][1] >= 0.03  # the second wait was delay * backoff


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, delay=1, backoff=2, max_delay=5)

    assert [retry_delay(policy, n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_huge_backoff_does_not_overflow() -> None:
    policy = RetryPolicy(max_attempts=100, delay=1, backoff=1e300, max_delay=60)

    assert retry_delay(policy, 99) == 60


def test_jitter_draws_between_half_and_full_delay() -> None:
    policy = RetryPolicy(delay=8, backoff=1, jitter=True)
    rng = random.Random(7)

    delays = [retry_delay(policy, 1, rng) for _ in range(200)]

    assert all(4 <= delay <= 8 for delay in delays)
    assert len(set(delays)) > 100


def test_expression_errors_and_non_retryable_errors_are_never_retried() -> None:
    policy = RetryPolicy(max_attempts=3)

    assert not is_retryable(NonRetryableError("no"), policy)
    assert not is_retryable(ExpressionEvaluationError("bad"), policy)
    assert is_retryable(ConnectionError("refused"), policy)
    assert is_retryable(ConnectionRefusedError(), RetryPolicy(retry_on=frozenset({"OSError"})))


async def test_attempt_exceeding_its_timeout_fails_with_timeout_error(
    executor: FlowExecutor, store: InMemoryRunStore
) -> None:
    flow = """
flow: Slow
steps:
  - task: Track
    id: nap
    inputs: {pause: 5}
    timeout: 0.05
    retry: {max_attempts: 2, delay: 0}
"""
    result = await executor.run(flow)

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.type == "TimeoutError"
    assert "timeout of 0.05s" in result.error.message
    assert store.get(result.run_id).tasks[TaskKey("nap")].attempts == 2  # timeouts are retried


async def test_on_error_continue_keeps_the_run_going(
    executor: FlowExecutor, store: InMemoryRunStore, probe: Probe
) -> None:
    probe.failures_left["f"] = 1
    flow = """
flow: Continue
steps:
  - task: Flaky
    id: f
    inputs: {name: f}
    on_error: continue
  - set: {id: next, values: {saw: "${f.status}", calls: "${f.calls}", type: "${f.error.type}"}}
outputs: {saw: "${next.saw}", calls: "${next.calls}", type: "${next.type}"}
"""
    result = await executor.run(flow)

    assert result.status is RunStatus.COMPLETED
    assert result.outputs == {"saw": "failed", "calls": None, "type": "RuntimeError"}
    assert store.get(result.run_id).tasks[TaskKey("f")].status is TaskStatus.FAILED


async def test_handler_steps_see_last_error_and_the_run_goes_on(
    executor: FlowExecutor, store: InMemoryRunStore, probe: Probe
) -> None:
    probe.failures_left["f"] = 1
    flow = """
flow: Handled
steps:
  - task: Flaky
    id: f
    inputs: {name: f}
    on_error:
      - set: {id: report, values: {what: "${context.last_error}"}}
      - set: {id: cleanup, values: {done: true}}
  - set: {id: after, values: {handled: "${report.what.message}", cleaned: "${cleanup.done}"}}
outputs: {after: "${after.handled}", cleaned: "${after.cleaned}", report: "${report.what}"}
"""
    result = await executor.run(flow)

    assert result.status is RunStatus.COMPLETED
    assert result.outputs == {
        "after": "f broke",
        "cleaned": True,
        "report": {"step": "f", "type": "RuntimeError", "message": "f broke"},
    }
    tasks = store.get(result.run_id).tasks
    assert tasks[TaskKey("f")].status is TaskStatus.FAILED
    assert tasks[TaskKey("report")].status is TaskStatus.COMPLETED


async def test_handler_steps_are_skipped_when_the_step_succeeds(
    executor: FlowExecutor, store: InMemoryRunStore
) -> None:
    flow = """
flow: NotNeeded
steps:
  - set: {id: ok, values: {v: 1}, on_error: [{set: {id: report, values: {v: 2}}}]}
  - set: {id: after, values: {v: "${report.status}"}}
outputs: {report: "${after.v}"}
"""
    result = await executor.run(flow)

    assert result.outputs == {"report": "skipped"}
    assert store.get(result.run_id).tasks[TaskKey("report")].status is TaskStatus.SKIPPED


async def test_failing_handler_fails_the_run(executor: FlowExecutor) -> None:
    flow = """
flow: BadHandler
steps:
  - fail: {id: boom, message: first, on_error: [{fail: {id: handler, message: second}}]}
"""
    with pytest.raises(FlowFailedError) as caught:
        await executor.execute_flow(flow)

    assert caught.value.error.step == "handler"
    assert caught.value.error.message == "second"


async def test_failure_in_a_dag_cancels_running_siblings(
    executor: FlowExecutor, store: InMemoryRunStore
) -> None:
    flow = """
flow: Abort
mode: dag
steps:
  - sleep: {id: slow, seconds: 30}
  - fail: {id: boom, message: stop}
  - set: {id: never, values: {v: "${slow.status}"}}
"""
    result = await executor.run(flow)

    assert result.status is RunStatus.FAILED
    tasks = store.get(result.run_id).tasks
    assert tasks[TaskKey("slow")].status is TaskStatus.CANCELLED
    assert tasks[TaskKey("never")].status is TaskStatus.CANCELLED
    assert store.get(result.run_id).remaining_steps == 0


async def test_condition_that_cannot_be_evaluated_fails_the_step(executor: FlowExecutor) -> None:
    flow = """
flow: BadIf
steps:
  - set: {id: s, values: {items: []}}
  - set: {id: t, values: {v: 1}, if: "${s.items[3]}"}
"""
    with pytest.raises(FlowFailedError) as caught:
        await executor.execute_flow(flow)

    assert caught.value.error.step == "t"
    assert caught.value.error.message.startswith("if:")


async def test_missing_declared_output_fails_the_step(executor: FlowExecutor) -> None:
    flow = """
flow: Missing
steps:
  - task: Echo
    id: e
    outputs: [value, other]
"""
    with pytest.raises(FlowFailedError) as caught:
        await executor.execute_flow(flow)

    assert caught.value.error.type == "MissingOutputError"
    assert "other" in caught.value.error.message


@pytest.mark.parametrize(
    "amplified",
    [
        # The attack: a list literal of one big value, written out 40 times.
        '"${[a.big' + ", a.big" * 39 + ']}"',
        # The same in the definition's own list, and text joined around placeholders.
        "[" + ", ".join(['"${a.big}"'] * 40) + "]",
        "{" + ", ".join(f'k{index}: "<${{a.big}}>"' for index in range(40)) + "}",
    ],
)
async def test_a_step_cannot_amplify_a_value_into_hundreds_of_megabytes(
    executor: FlowExecutor, probe: Probe, amplified: str
) -> None:
    flow = f"""
flow: Amplify
steps:
  - set: {{id: a, values: {{big: "${{'x' * 1000000}}"}}}}
  - task: Echo
    id: b
    inputs: {{value: {amplified}}}
"""
    result = await executor.run(flow)

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert (result.error.step, result.error.type) == ("b", "ExpressionLimitError")
    assert probe.calls["Echo"] == 0  # refused while its arguments were being rendered


# The tutorial's shape (examples/tutorial/flow.yaml): a query's rows, the first of them handed
# to a custom task, both only on a cache miss.
FIRST_ROW_FLOW = """
flow: FirstRow
inputs:
  - {name: cached, type: boolean, default: false}
  - {name: rows, type: array, default: []}
steps:
  - set: {id: check_cache, values: {exists: "${inputs.cached}"}}
  - set:
      id: fetch_from_db
      values: {rows: "${inputs.rows}"}
      if: "not ${check_cache.exists}"
  - task: Echo
    id: transform
    inputs:
      value: ${fetch_from_db.rows[0]}
    if: "not ${check_cache.exists}"
outputs: {user: "${transform.value if not check_cache.exists else 'cached'}"}
"""


async def test_a_missing_row_names_the_step_input_expression_and_the_empty_result(
    executor: FlowExecutor, probe: Probe
) -> None:
    with pytest.raises(FlowFailedError) as caught:
        await executor.execute_flow(FIRST_ROW_FLOW, inputs={"rows": []})

    assert probe.calls["Echo"] == 0
    assert (caught.value.error.step, caught.value.error.type) == (
        "transform",
        "ExpressionEvaluationError",
    )
    assert caught.value.error.message == (
        "input 'value' = `${fetch_from_db.rows[0]}`: `fetch_from_db.rows` is empty "
        "(an array of length 0), so it has no index 0"
    )


async def test_a_skipped_step_does_not_evaluate_its_inputs(
    executor: FlowExecutor, probe: Probe
) -> None:
    found = await executor.execute_flow(FIRST_ROW_FLOW, inputs={"rows": [{"id": 1}]})
    cached = await executor.execute_flow(FIRST_ROW_FLOW, inputs={"cached": True})

    assert found == {"user": {"id": 1}}
    assert cached == {"user": "cached"}  # `fetch_from_db.rows[0]` was never read
    assert probe.calls["Echo"] == 1

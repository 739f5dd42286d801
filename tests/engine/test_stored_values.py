"""What a run keeps: storable outputs only, each step's and the whole run's within their limits,
fan-outs within theirs, and error messages that any store can hold."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.domain.storable import MAX_DEPTH
from app.engine import FlowExecutor
from app.engine.limits import RunLimits
from app.engine.memory_store import InMemoryRunStore
from app.errors import MAX_ERROR_MESSAGE_CHARS, DefinitionError
from app.tasks import TaskRegistry
from tests.store.value_tasks import UNSTORABLE

calls: Counter[str] = Counter()


def value_registry() -> TaskRegistry:
    registry = TaskRegistry()

    @registry.register("Unstorable")
    def unstorable(kind: str) -> dict[str, Any]:
        """Returns rows whose fourth holds the unstorable value in `name`."""
        calls[kind] += 1
        rows: list[dict[str, Any]] = [{"name": "ok"} for _ in range(3)]
        rows.append({"name": UNSTORABLE[kind]})
        return {"rows": rows}

    @registry.register("Driver")
    def driver() -> dict[str, Any]:
        return {"at": datetime(2026, 1, 2, tzinfo=UTC), "price": Decimal("2.50"), "pair": (1, 2)}

    @registry.register("Bytes")
    def bytes_of(size: int) -> dict[str, Any]:
        calls["Bytes"] += 1
        return {"text": "x" * size}

    @registry.register("Raise")
    def raise_(message: str) -> dict[str, Any]:
        raise RuntimeError(message)

    return registry


@pytest.fixture
def store() -> InMemoryRunStore:
    return InMemoryRunStore()


@pytest.fixture
def executor(store: InMemoryRunStore) -> FlowExecutor:
    calls.clear()
    return FlowExecutor(value_registry(), store=store, env={})


def limited(store: InMemoryRunStore, **limits: int) -> FlowExecutor:
    return FlowExecutor(value_registry(), store=store, env={}, limits=RunLimits(**limits))


@pytest.mark.parametrize("kind", sorted(UNSTORABLE))
async def test_a_step_with_unstorable_outputs_fails_naming_the_step_and_the_path(
    executor: FlowExecutor, store: InMemoryRunStore, kind: str
) -> None:
    flow = f"""
flow: Values
steps:
  - task: Unstorable
    id: fetch
    inputs: {{kind: {kind}}}
    retry: {{max_attempts: 3, delay: 0}}
"""
    result = await executor.run(flow)

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.step == "fetch"
    assert result.error.type == "UnstorableValueError"
    assert result.error.message.startswith(
        "step 'fetch' returned a value that cannot be stored: outputs.rows[3].name"
    )
    assert calls[kind] == 1  # the same value would come back: not retried
    task = store.get(result.run_id).tasks[TaskKey("fetch")]
    assert (task.status, task.outputs) == (TaskStatus.FAILED, None)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("${'\\\\ud800'}", "lone surrogates"),  # YAML's \\ is one backslash
        ("${float('nan')}", "NaN is not a JSON number"),
        ("${1e308 * 10}", "Infinity is not a JSON number"),
        ("${ {1: 2} }", "the key 1 is not text"),
    ],
)
async def test_a_set_step_whose_expression_builds_an_unstorable_value_fails(
    executor: FlowExecutor, expression: str, reason: str
) -> None:
    flow = f"""
flow: Values
steps:
  - set: {{id: s, values: {{v: "{expression}"}}}}
"""
    result = await executor.run(flow)

    assert result.error is not None
    assert (result.error.step, result.error.type) == ("s", "UnstorableValueError")
    assert "outputs.v: " in result.error.message
    assert reason in result.error.message


async def test_unstorable_run_outputs_fail_the_run_naming_the_output(
    executor: FlowExecutor, store: InMemoryRunStore
) -> None:
    flow = """
flow: Values
steps:
  - set: {id: s, values: {v: 1}}
outputs: {ok: "${s.v}", bad: "${ {'k': [float('nan')]} }"}
"""
    result = await executor.run(flow)

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.step is None
    assert result.error.type == "UnstorableValueError"
    assert result.error.message == (
        "the run's outputs cannot be stored: outputs.bad.k[0]: NaN is not a JSON number"
    )
    assert store.get(result.run_id).outputs is None


async def test_later_steps_see_outputs_as_they_are_stored(executor: FlowExecutor) -> None:
    flow = """
flow: Values
steps:
  - task: Driver
    id: d
outputs: {at: "${d.at}", price: "${d.price}", pair: "${d.pair}"}
"""
    outputs = await executor.execute_flow(flow)

    # As a run resumed from the store would see them: what the store gives back.
    assert outputs == {"at": "2026-01-02T00:00:00+00:00", "price": 2.5, "pair": [1, 2]}


async def test_an_error_message_is_made_storable_not_refused(executor: FlowExecutor) -> None:
    flow = """
flow: Values
steps:
  - task: Raise
    id: boom
    inputs: {message: "${'bad \\\\ud800 and \\\\x00 ' + 'x' * 100000}"}
"""
    result = await executor.run(flow)

    assert result.error is not None
    assert result.error.type == "RuntimeError"
    assert result.error.message.startswith("bad \ufffd and \ufffd xxx")
    assert result.error.message.endswith(
        f"... ({100012 - MAX_ERROR_MESSAGE_CHARS} more characters)"
    )
    result.error.message.encode("utf-8")  # any store holds it


async def test_outputs_past_max_step_output_bytes_fail_the_step_without_retry(
    store: InMemoryRunStore,
) -> None:
    executor = limited(store, max_step_output_bytes=2000)
    flow = """
flow: Big
steps:
  - task: Bytes
    id: big
    inputs: {size: 5000}
    retry: {max_attempts: 3, delay: 0}
"""
    result = await executor.run(flow)

    assert result.error is not None
    assert (result.error.step, result.error.type) == ("big", "OutputTooLargeError")
    assert result.error.message == (
        "the outputs of step 'big' take at least 5011 bytes as JSON; "
        "MAX_STEP_OUTPUT_BYTES allows 2000"
    )  # the walk stopped as soon as it knew: {"text":"x...  is 5011 bytes before its end
    assert calls["Bytes"] == 1
    assert store.get(result.run_id).tasks[TaskKey("big")].outputs is None


async def test_each_fan_out_element_is_capped(store: InMemoryRunStore) -> None:
    executor = limited(store, max_step_output_bytes=2000)
    flow = """
flow: Wide
steps:
  - task: Bytes
    id: each
    for_each: "${[10, 20, 5000, 30]}"
    max_concurrency: 1
    inputs: {size: "${item}"}
"""
    result = await executor.run(flow)

    assert result.error is not None
    assert (result.error.step, result.error.type) == ("each", "OutputTooLargeError")
    assert result.error.message.startswith("element 2: the outputs of step 'each' take at least")
    tasks = store.get(result.run_id).tasks
    assert tasks[TaskKey("each", 1)].status is TaskStatus.COMPLETED
    assert tasks[TaskKey("each", 2)].outputs is None


def chain(sizes: list[int], on_error: str = "fail") -> str:
    steps = "".join(
        f"""
  - task: Bytes
    id: s{index}
    inputs: {{size: {size}}}
    on_error: {on_error}"""
        for index, size in enumerate(sizes)
    )
    return f"flow: Chain\nsteps:{steps}\n"


async def test_a_run_past_max_run_document_bytes_fails_whatever_on_error_says(
    store: InMemoryRunStore,
) -> None:
    executor = limited(store, max_step_output_bytes=1000, max_run_document_bytes=2500)

    result = await executor.run(chain([900, 900, 900, 10], on_error="continue"))

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert (result.error.step, result.error.type) == ("s2", "RunTooLargeError")
    assert result.error.message == (
        "the outputs of step 's2' (911 bytes) would bring what the run stores to 2733 bytes; "
        "MAX_RUN_DOCUMENT_BYTES allows 2500"
    )
    run = store.get(result.run_id)
    statuses = {key.step_id: (task.status, task.outputs is None) for key, task in run.tasks.items()}
    assert statuses == {
        "s0": (TaskStatus.COMPLETED, False),
        "s1": (TaskStatus.COMPLETED, False),
        "s2": (TaskStatus.FAILED, True),  # nothing of it is kept
        "s3": (TaskStatus.CANCELLED, True),
    }


async def test_fan_out_elements_are_charged_to_the_run_as_they_finish(
    store: InMemoryRunStore,
) -> None:
    executor = limited(store, max_step_output_bytes=1000, max_run_document_bytes=2500)
    flow = """
flow: Wide
steps:
  - task: Bytes
    id: each
    for_each: "${[900, 900, 900, 900]}"
    max_concurrency: 1
    inputs: {size: "${item}"}
    on_error: continue
"""
    result = await executor.run(flow)

    assert result.error is not None
    assert (result.error.step, result.error.type) == ("each", "RunTooLargeError")
    assert result.error.message.startswith("the outputs of step 'each' (element 2) (911 bytes)")
    tasks = store.get(result.run_id).tasks
    assert [tasks[TaskKey("each", index)].status for index in range(4)] == [
        TaskStatus.COMPLETED,
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
    ]


async def test_the_run_outputs_count_against_its_document(store: InMemoryRunStore) -> None:
    executor = limited(store, max_step_output_bytes=1000, max_run_document_bytes=1800)
    flow = chain([900]) + 'outputs: {copy: "${s0.text}"}\n'

    result = await executor.run(flow)

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert (result.error.step, result.error.type) == (None, "RunTooLargeError")
    assert result.error.message.startswith(
        "the run's outputs (911 bytes) would bring what the run stores to 1822"
    )
    run = store.get(result.run_id)
    assert run.outputs is None
    assert run.tasks[TaskKey("s0")].status is TaskStatus.COMPLETED


async def test_a_run_within_its_limits_completes(store: InMemoryRunStore) -> None:
    executor = limited(store, max_step_output_bytes=1000, max_run_document_bytes=2800)

    result = await executor.run(chain([900, 900, 900]))

    assert result.status is RunStatus.COMPLETED


async def test_fan_out_past_max_fan_out_fails_the_step_naming_the_setting(
    store: InMemoryRunStore,
) -> None:
    executor = limited(store, max_fan_out=3)
    flow = """
flow: Wide
steps:
  - set: {id: each, for_each: "${[1, 2, 3, 4]}", values: {v: 1}}
"""
    result = await executor.run(flow)

    assert result.error is not None
    assert (result.error.step, result.error.type) == ("each", "FanOutTooLargeError")
    assert result.error.message == "for_each gave 4 elements; MAX_FAN_OUT allows at most 3"


def test_the_default_limits() -> None:
    assert RunLimits() == RunLimits(
        max_step_output_bytes=1024 * 1024,
        max_run_document_bytes=16 * 1024 * 1024,
        max_fan_out=10_000,
    )


async def test_a_resumed_run_starts_with_the_charge_of_the_steps_it_keeps(
    store: InMemoryRunStore,
) -> None:
    flow = chain([900, 900, 900])
    first = await limited(store, max_step_output_bytes=1000).run(flow)
    assert first.status is RunStatus.COMPLETED
    executor = limited(store, max_step_output_bytes=1000, max_run_document_bytes=2500)
    definition = executor.load(flow)
    # Resumed from s2: s0 and s1 are kept.
    store.get(first.run_id).tasks[TaskKey("s2")].status = TaskStatus.FAILED

    resumed = await executor.resume(definition, first.run_id)

    assert resumed.error is not None
    assert (resumed.error.step, resumed.error.type) == ("s2", "RunTooLargeError")
    assert "would bring what the run stores to 2733 bytes" in resumed.error.message


@pytest.mark.parametrize(
    ("source", "loc", "reason", "line"),
    [
        (
            "flow: F\nsteps:\n  - set: {id: s, values: {n: .inf}}\n",
            ("steps", 0, "set", "values", "n"),
            "Infinity is not a JSON number",
            3,
        ),
        (
            "flow: F\nsteps:\n  - set: {id: s, values: {n: " + "[" * 40 + "]" * 40 + "}}\n",
            ("steps", 0, "set", "values", "n", *[0] * (MAX_DEPTH - 5)),  # 5 levels above n
            f"nesting deeper than {MAX_DEPTH} levels",
            3,
        ),
    ],
)
def test_a_definition_holding_what_no_store_can_hold_is_refused_where_it_stands(
    executor: FlowExecutor, source: str, loc: tuple[Any, ...], reason: str, line: int
) -> None:
    with pytest.raises(DefinitionError) as refused:
        executor.parse(source)

    (problem,) = refused.value.problems
    assert (problem.loc, problem.msg, problem.type) == (loc, reason, "unstorable_value")
    assert problem.line == line


async def test_a_definition_may_have_number_keys_json_turns_into_text(
    executor: FlowExecutor,
) -> None:
    outputs = await executor.execute_flow(
        "flow: F\nsteps:\n  - set: {id: s, values: {codes: {200: ok}}}\n"
        'outputs: {codes: "${s.codes}"}\n'
    )

    assert outputs == {"codes": {"200": "ok"}}

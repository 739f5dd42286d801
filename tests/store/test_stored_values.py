"""One rule on every store (SQLite, PostgreSQL, MariaDB): unstorable values fail their step with
its name and the value's path, error messages are stored whatever they quote, and a run past
its size limits fails with nothing of the refused outputs written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from app.domain.records import OmittedValue, RunRecord
from app.domain.runs import RunStatus, TaskStatus
from app.domain.storable import MAX_DEPTH
from app.errors import DefinitionError, UnstorableValueError
from app.services.container import Services
from app.settings import Settings
from app.store.models import FlowDefinitionRow
from tests.callers import admin
from tests.store.value_tasks import DRIVER_VALUES_STORED, UNSTORABLE, nested

VALUES = """
flow: Values
inputs: {kind: string}
steps:
  - task: Unstorable
    id: fetch
    inputs: {kind: "${inputs.kind}"}
"""


@pytest.fixture
async def services(migrated_store_url: str) -> AsyncIterator[Services]:
    settings = Settings(
        _env_file=None,
        database_url=migrated_store_url,
        migrate_on_start=False,
        task_modules=["tests.store.value_tasks"],
        max_step_output_bytes=1024,
        max_run_document_bytes=2048,
    )
    opened = await Services.open(settings)
    yield opened
    await opened.close(grace=0)


async def run(services: Services, source: str, inputs: dict[str, Any] | None = None) -> RunRecord:
    """Register and execute the flow; the run as the store keeps it."""
    registered = await services.flows.register(await admin(services), source)
    started = await services.runs.execute(
        await admin(services), registered.flow.name, inputs or {}, wait=10
    )
    return await services.runs.get(started.run.run_id)


def step(run: RunRecord, step_id: str, index: int = 0) -> Any:
    return next(s for s in run.steps if (s.step_id, s.task_index) == (step_id, index))


@pytest.mark.parametrize("kind", sorted(UNSTORABLE))
async def test_unstorable_outputs_fail_their_step_with_its_path(
    services: Services, kind: str
) -> None:
    stored = await run(services, VALUES, {"kind": kind})

    assert stored.status is RunStatus.FAILED
    assert stored.error is not None
    assert (stored.error.step, stored.error.type) == ("fetch", "UnstorableValueError")
    assert stored.error.message.startswith(
        "step 'fetch' returned a value that cannot be stored: outputs.rows[3].name"
    )
    fetch = step(stored, "fetch")
    assert (fetch.status, fetch.outputs, fetch.attempts) == (TaskStatus.FAILED, None, 1)
    assert fetch.error == stored.error
    assert [
        item.run_id for item in (await services.runs.list_runs(await admin(services))).items
    ] == [stored.run_id]


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("${'\\\\ud800'}", "lone surrogates"),  # YAML's \\ is one backslash
        ("${'a\\\\x00b'}", "NUL"),
        ("${float('nan')}", "NaN is not a JSON number"),
        ("${-1e308 * 10}", "-Infinity is not a JSON number"),
        ("${ {1: 2} }", "the key 1 is not text"),
    ],
)
async def test_expressions_that_build_unstorable_values_fail_their_step(
    services: Services, expression: str, reason: str
) -> None:
    source = f"""
flow: Built
steps:
  - set: {{id: made, values: {{v: "{expression}"}}}}
"""
    stored = await run(services, source)

    assert stored.error is not None
    assert (stored.error.step, stored.error.type) == ("made", "UnstorableValueError")
    assert "outputs.v: " in stored.error.message
    assert reason in stored.error.message
    assert step(stored, "made").outputs is None


async def test_unstorable_run_outputs_fail_the_run_and_are_not_stored(services: Services) -> None:
    source = """
flow: Outputs
steps:
  - set: {id: made, values: {v: 1}}
outputs: {good: "${made.v}", bad: "${float('inf')}"}
"""
    stored = await run(services, source)

    assert stored.status is RunStatus.FAILED
    assert stored.outputs is None
    assert stored.error is not None
    assert (stored.error.step, stored.error.type) == (None, "UnstorableValueError")
    assert "outputs.bad: Infinity is not a JSON number" in stored.error.message
    assert step(stored, "made").outputs == {"v": 1}


async def test_an_error_message_holding_any_character_is_stored(services: Services) -> None:
    source = """
flow: Raises
steps:
  - task: Raise
    id: boom
    inputs: {message: "${'lone \\\\ud800, NUL \\\\x00, and ' + 'x' * 100000}"}
"""
    stored = await run(services, source)

    assert stored.error is not None
    assert stored.error.message.startswith("lone \ufffd, NUL \ufffd, and xxx")
    assert stored.error.message.endswith(" more characters)")
    assert step(stored, "boom").error == stored.error


DEEP = """
flow: Deep
inputs: {depth: integer, x: any}
steps:
  - task: Nested
    id: deep
    inputs: {depth: "${inputs.depth}"}
outputs: {copy: "${deep.v}"}
"""


async def test_the_deepest_storable_values_are_stored_on_every_store(services: Services) -> None:
    stored = await run(services, DEEP, {"depth": MAX_DEPTH, "x": nested(MAX_DEPTH - 1)})

    assert stored.status is RunStatus.COMPLETED, stored.error
    assert stored.inputs == {"depth": MAX_DEPTH, "x": nested(MAX_DEPTH - 1)}
    assert step(stored, "deep").outputs == {"v": nested(MAX_DEPTH - 1)}
    assert stored.outputs == {"copy": nested(MAX_DEPTH - 1)}


async def test_one_level_deeper_is_refused_before_any_store_sees_it(services: Services) -> None:
    stored = await run(services, DEEP, {"depth": MAX_DEPTH + 1})
    with pytest.raises(UnstorableValueError) as refused:
        await services.runs.execute(
            await admin(services), "Deep", {"depth": 1, "x": nested(MAX_DEPTH)}
        )

    assert stored.error is not None
    assert (stored.error.step, stored.error.type) == ("deep", "UnstorableValueError")
    assert f"nesting deeper than {MAX_DEPTH} levels" in stored.error.message
    assert refused.value.loc[:2] == ("inputs", "x")
    assert len((await services.runs.list_runs(await admin(services))).items) == 1


async def test_driver_values_are_stored_as_json_and_read_back_equal(services: Services) -> None:
    source = """
flow: Driver
steps:
  - task: DriverValues
    id: fetch
outputs: {copy: "${fetch}"}
"""
    stored = await run(services, source)

    assert stored.status is RunStatus.COMPLETED
    assert step(stored, "fetch").outputs == DRIVER_VALUES_STORED
    copy = {**DRIVER_VALUES_STORED, "status": "completed", "error": None}  # `fetch` as a whole
    assert stored.outputs == {"copy": copy}


async def test_a_step_past_max_step_output_bytes_fails_and_stores_nothing(
    services: Services,
) -> None:
    source = """
flow: Big
steps:
  - task: Text
    id: big
    inputs: {size: 2000}
"""
    stored = await run(services, source)

    assert stored.error is not None
    assert (stored.error.step, stored.error.type) == ("big", "OutputTooLargeError")
    assert "MAX_STEP_OUTPUT_BYTES allows 1024" in stored.error.message
    assert step(stored, "big").outputs is None


async def test_a_run_past_max_run_document_bytes_fails_with_nothing_half_written(
    services: Services,
) -> None:
    source = """
flow: Wide
steps:
  - task: Text
    id: each
    for_each: "${[900, 900, 900]}"
    max_concurrency: 1
    inputs: {size: "${item}"}
    on_error: continue
  - task: Text
    id: after
    inputs: {size: 1}
outputs: {all: "${each.text}"}
"""
    stored = await run(services, source)

    assert stored.status is RunStatus.FAILED
    assert stored.outputs is None
    assert stored.error is not None
    assert (stored.error.step, stored.error.type) == ("each", "RunTooLargeError")
    assert "MAX_RUN_DOCUMENT_BYTES allows 2048" in stored.error.message
    assert [(s.step_id, s.task_index, s.status, s.outputs is None) for s in stored.steps] == [
        ("each", 0, TaskStatus.COMPLETED, False),
        ("after", 0, TaskStatus.CANCELLED, True),
        ("each", 1, TaskStatus.COMPLETED, False),
        ("each", 2, TaskStatus.FAILED, True),
    ]


async def test_a_listing_leaves_values_past_its_limit_in_the_store(services: Services) -> None:
    source = """
flow: Sized
inputs: {size: integer}
steps:
  - task: Text
    id: text
    inputs: {size: "${inputs.size}"}
outputs: {text: "${text.text}"}
"""
    small = await run(services, source, {"size": 10})
    large = await run(services, source, {"size": 900})
    failed = await run(services, VALUES, {"kind": "nan"})

    page = await services.runs.list_runs(await admin(services), value_limit=100)

    by_id = {item.run_id: item for item in page.items}
    assert by_id[small.run_id].outputs == {"text": "x" * 10}
    omitted = by_id[large.run_id].outputs
    assert isinstance(omitted, OmittedValue)
    assert omitted.bytes >= 900  # the store's own JSON text: spaces and escapes may differ
    assert by_id[large.run_id].inputs == {"size": 900}
    assert by_id[failed.run_id].outputs is None
    assert (await services.runs.list_runs(await admin(services))).items[1].outputs == {
        "text": "x" * 900
    }


@pytest.mark.parametrize(
    "source",
    [
        "flow: Inf\nsteps:\n  - set: {id: s, values: {n: .inf}}\n",
        "flow: Deep\nsteps:\n  - set: {id: s, values: {n: " + "[" * 40 + "]" * 40 + "}}\n",
    ],
    ids=["infinity", "deep"],
)
async def test_a_definition_no_store_can_hold_is_refused_and_nothing_is_stored(
    services: Services, source: str
) -> None:
    with pytest.raises(DefinitionError) as refused:
        await services.flows.register(await admin(services), source)

    assert refused.value.problems[0].type == "unstorable_value"
    async with services.store.engine.connect() as connection:
        stored = await connection.execute(select(func.count()).select_from(FlowDefinitionRow))
    assert stored.scalar_one() == 0

"""The core built-ins `set`, `log`, `sleep`, `wait_for` and `fail`, invoked as the engine
invokes them (the waiting ones answer what to wait for: tests/engine/test_waits.py waits)."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.clock import utcnow
from app.errors import NonRetryableError, TaskError
from app.tasks import TaskContext
from app.tasks.builtins.core import registry


async def run(name: str, context: TaskContext, **arguments: Any) -> dict[str, Any]:
    return await registry.get(name).invoke(arguments, context=context)


def test_specs_describe_the_step_params_and_outputs() -> None:
    catalog = registry.catalog()
    assert set(catalog) == {"set", "log", "sleep", "wait_for", "flow", "fail"}
    assert all(spec.builtin for spec in catalog.values())
    assert catalog["set"].required_params == {"values"}
    assert catalog["set"].outputs is None
    assert catalog["set"].outputs_from_param == "values"
    assert catalog["log"].required_params == {"message"}
    assert catalog["log"].optional_params == {"level"}  # context is injected, not a param
    assert catalog["sleep"].optional_params == {"seconds", "until"}
    assert catalog["wait_for"].required_params == {"signal"}
    assert catalog["wait_for"].outputs == frozenset({"payload", "timed_out"})
    assert catalog["flow"].required_params == {"flow"}
    assert catalog["flow"].optional_params == {"inputs", "version"}
    assert {name for name, spec in catalog.items() if spec.waits} == {"sleep", "wait_for", "flow"}
    assert catalog["fail"].optional_params == {"message"}
    for name in ("log", "sleep", "fail"):
        assert catalog[name].outputs == frozenset()
    assert all(not spec.connection_types for spec in catalog.values())


async def test_set_returns_its_values_as_outputs(context: TaskContext) -> None:
    values = {"greeting": "hi", "count": 3, "nested": {"a": [1, 2]}}
    assert await run("set", context, values=values) == values


async def test_set_refuses_values_that_are_not_a_mapping(context: TaskContext) -> None:
    with pytest.raises(NonRetryableError, match="mapping"):
        await run("set", context, values=[1, 2])


@pytest.mark.parametrize(
    ("level", "levelno"),
    [
        ("debug", logging.DEBUG),
        ("info", logging.INFO),
        ("warning", logging.WARNING),
        ("error", logging.ERROR),
        ("WARNING", logging.WARNING),
    ],
)
async def test_log_writes_to_the_context_logger_at_the_level(
    context: TaskContext, caplog: pytest.LogCaptureFixture, level: str, levelno: int
) -> None:
    caplog.set_level(logging.DEBUG, logger="app.tasks")
    assert await run("log", context, message="hello from a flow", level=level) == {}
    [record] = caplog.records
    assert record.levelno == levelno
    assert record.getMessage() == "hello from a flow"
    assert record.__dict__["run_id"] == "run-1"  # the run's context travels with the record
    assert record.__dict__["step_id"] == "step_1"


async def test_log_defaults_to_info_and_accepts_any_message(
    context: TaskContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="app.tasks")
    await run("log", context, message={"user": 1})
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == "{'user': 1}"


@pytest.mark.parametrize("level", ["verbose", 3, None])
async def test_log_refuses_an_unknown_level_naming_the_known_ones(
    context: TaskContext, level: object
) -> None:
    with pytest.raises(NonRetryableError, match="debug, info, warning, error"):
        await run("log", context, message="x", level=level)


async def test_sleep_answers_when_to_wake_without_waiting(context: TaskContext) -> None:
    before = utcnow()
    async with asyncio.timeout(1):
        asked = await run("sleep", context, seconds=3600)
    assert asked["signal"] is None
    assert before + timedelta(seconds=3600) <= asked["until"] <= utcnow() + timedelta(hours=1)


async def test_sleep_until_reads_an_iso_time_naive_as_utc(context: TaskContext) -> None:
    asked = await run("sleep", context, until="2030-01-01T12:00:00")
    assert asked["until"] == datetime(2030, 1, 1, 12, tzinfo=UTC)
    asked = await run("sleep", context, until="2030-01-01T12:00:00+02:00")
    assert asked["until"] == datetime(2030, 1, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize("seconds", [-1, "1", True, float("nan"), float("inf"), 1e12])
async def test_sleep_refuses_what_is_not_a_number_of_seconds(
    context: TaskContext, seconds: object
) -> None:
    with pytest.raises(NonRetryableError, match="must be a number of seconds from 0"):
        await run("sleep", context, seconds=seconds)


async def test_sleep_needs_seconds_or_until_not_both(context: TaskContext) -> None:
    with pytest.raises(NonRetryableError, match="either `seconds` or `until`"):
        await run("sleep", context)
    with pytest.raises(NonRetryableError, match="either `seconds` or `until`"):
        await run("sleep", context, seconds=1, until="2030-01-01T00:00:00Z")


async def test_wait_for_answers_the_signal_to_wait_for(context: TaskContext) -> None:
    assert await run("wait_for", context, signal="approve") == {
        "until": None,
        "signal": "approve",
    }


@pytest.mark.parametrize("signal", ["", "with space", "a/b", 1, None, "x" * 129])
async def test_wait_for_refuses_a_signal_name_a_url_cannot_carry(
    context: TaskContext, signal: object
) -> None:
    with pytest.raises(NonRetryableError, match="signal name of 1 to 128"):
        await run("wait_for", context, signal=signal)


async def test_flow_answers_the_child_run_to_start(context: TaskContext) -> None:
    asked = await run("flow", context, flow="Child", inputs={"n": 1}, version=2)
    assert asked == {
        "until": None,
        "signal": None,
        "child": {"flow": "Child", "inputs": {"n": 1}, "version": 2},
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"inputs": [1]}, "`inputs` must be a mapping, not list"),
        ({"version": 0}, "`version` must be a version number, not 0"),
        ({"version": True}, "`version` must be a version number, not True"),
    ],
)
async def test_flow_refuses_inputs_or_version_it_cannot_start_a_run_with(
    context: TaskContext, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(NonRetryableError, match=re.escape(message)):
        await run("flow", context, flow="Child", **arguments)


async def test_fail_raises_a_retryable_task_error_with_the_message(
    context: TaskContext,
) -> None:
    with pytest.raises(TaskError, match=r"^database is down$") as raised:
        await run("fail", context, message="database is down")
    assert not isinstance(raised.value, NonRetryableError)


async def test_fail_has_a_default_message(context: TaskContext) -> None:
    with pytest.raises(TaskError, match=r"^failed$"):
        await run("fail", context)

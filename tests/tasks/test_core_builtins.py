"""The core built-ins `set`, `log`, `sleep` and `fail`, invoked as the engine invokes them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from app.errors import NonRetryableError, TaskError
from app.tasks import TaskContext
from app.tasks.builtins.core import registry


async def run(name: str, context: TaskContext, **arguments: Any) -> dict[str, Any]:
    return await registry.get(name).invoke(arguments, context=context)


def test_specs_describe_the_step_params_and_outputs() -> None:
    catalog = registry.catalog()
    assert set(catalog) == {"set", "log", "sleep", "fail"}
    assert all(spec.builtin for spec in catalog.values())
    assert catalog["set"].required_params == {"values"}
    assert catalog["set"].outputs is None
    assert catalog["set"].outputs_from_param == "values"
    assert catalog["log"].required_params == {"message"}
    assert catalog["log"].optional_params == {"level"}  # context is injected, not a param
    assert catalog["sleep"].required_params == {"seconds"}
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


async def test_sleep_waits_at_least_the_given_seconds(context: TaskContext) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await run("sleep", context, seconds=0.05) == {}
    assert loop.time() - started >= 0.05


async def test_sleep_accepts_zero_and_integers(context: TaskContext) -> None:
    assert await run("sleep", context, seconds=0) == {}


@pytest.mark.parametrize("seconds", [-1, "1", True, None, float("nan"), float("inf")])
async def test_sleep_refuses_what_is_not_a_non_negative_number(
    context: TaskContext, seconds: object
) -> None:
    with pytest.raises(NonRetryableError, match="non-negative number of seconds"):
        await run("sleep", context, seconds=seconds)


@pytest.mark.parametrize("seconds", [1, 1.5, 1e9])
async def test_sleep_that_cannot_end_within_its_attempts_timeout_fails_at_once(
    seconds: float,
) -> None:
    context = TaskContext.for_attempt("run-1", "TestFlow", "nap", 0, 1, timeout=1)

    with pytest.raises(TimeoutError, match="cannot end within the attempt's timeout of 1s"):
        async with asyncio.timeout(5):  # it must not sleep first
            await run("sleep", context, seconds=seconds)


async def test_sleep_shorter_than_its_attempts_timeout_sleeps() -> None:
    context = TaskContext.for_attempt("run-1", "TestFlow", "nap", 0, 1, timeout=1)

    assert await run("sleep", context, seconds=0.01) == {}


async def test_fail_raises_a_retryable_task_error_with_the_message(
    context: TaskContext,
) -> None:
    with pytest.raises(TaskError, match=r"^database is down$") as raised:
        await run("fail", context, message="database is down")
    assert not isinstance(raised.value, NonRetryableError)


async def test_fail_has_a_default_message(context: TaskContext) -> None:
    with pytest.raises(TaskError, match=r"^failed$"):
        await run("fail", context)

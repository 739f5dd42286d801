"""The core built-in tasks, which need no connection: `set`, `log`, `sleep`, `wait_for` and
`fail`.

Each function's signature is its step's parameters: the registry derives the required and
optional parameters from it and binds the step's values by name.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain.clock import utcnow
from app.domain.runs import SIGNAL_NAME_PATTERN
from app.errors import NonRetryableError, TaskError
from app.tasks.context import TaskContext
from app.tasks.registry import TaskRegistry

registry = TaskRegistry()

SIGNAL_NAME = re.compile(SIGNAL_NAME_PATTERN)
MAX_WAIT_SECONDS = 10 * 366 * 24 * 3600  # ten years: longer is a mistake

LOG_LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


@registry.register(
    "set",
    builtin=True,
    pure=True,
    outputs=None,
    outputs_from_param="values",
    description="Expose the given values as the step's outputs",
)
async def set_values(values: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise NonRetryableError(
            f"set needs `values` to be a mapping of output names to values, "
            f"not {type(values).__name__}"
        )
    return dict(values)


@registry.register(
    "log",
    builtin=True,
    pure=True,
    outputs=(),
    description="Write a message to the run's log at a level (debug, info, warning, error)",
)
async def log(message: Any, level: str = "info", *, context: TaskContext) -> dict[str, Any]:
    levelno = LOG_LEVELS.get(level.lower()) if isinstance(level, str) else None
    if levelno is None:
        known = ", ".join(LOG_LEVELS)
        raise NonRetryableError(f"log level {level!r} is not one of: {known}")
    context.logger.log(levelno, "%s", message)
    return {}


# The waiting tasks: their functions do not wait, they answer what to wait for
# (`{"until": <aware datetime or None>, "signal": <name or None>}`); the engine waits, and a
# run with nothing else to do parks meanwhile (docs/architecture.md, "Parked runs").


@registry.register(
    "sleep",
    builtin=True,
    waits=True,
    outputs=(),
    description="Wait durably for a number of `seconds`, or `until` an ISO 8601 time",
)
async def sleep(seconds: Any = None, until: Any = None) -> dict[str, Any]:
    if (seconds is None) == (until is None):
        raise NonRetryableError("sleep needs either `seconds` or `until`, not both")
    if until is not None:
        return {"until": _timestamp(until, "until"), "signal": None}
    return {"until": utcnow() + timedelta(seconds=_seconds(seconds, "seconds")), "signal": None}


@registry.register(
    "wait_for",
    builtin=True,
    waits=True,
    outputs=("payload", "timed_out"),
    description="Wait durably for the signal `signal` (POST /runs/{id}/signals/{signal}), at "
    "most the step's `timeout` seconds",
)
async def wait_for(signal: Any) -> dict[str, Any]:
    if not isinstance(signal, str) or not SIGNAL_NAME.fullmatch(signal):
        raise NonRetryableError(
            f"wait_for needs a signal name of 1 to 128 letters, digits, '_', '-' or '.', "
            f"not {signal!r}"
        )
    return {"until": None, "signal": signal}  # the engine adds the step's `timeout`


@registry.register(
    "flow",
    builtin=True,
    waits=True,
    outputs=None,
    description="Run another flow as a child run and wait for it: its outputs, or its error "
    "(`- flow: Name` with `inputs` and `version`)",
)
async def run_flow(flow: Any, inputs: Any = None, version: Any = None) -> dict[str, Any]:
    if not isinstance(inputs, Mapping | None):
        raise NonRetryableError(f"`inputs` must be a mapping, not {type(inputs).__name__}")
    valid_version = version is None or (isinstance(version, int) and not isinstance(version, bool))
    if not valid_version or (version is not None and version < 1):
        raise NonRetryableError(f"`version` must be a version number, not {version!r}")
    child = {"flow": flow, "inputs": dict(inputs or {}), "version": version}
    return {"until": None, "signal": None, "child": child}


def _seconds(value: Any, name: str) -> float:
    # bool is an int in Python, but `seconds: true` is a mistake, not one second.
    valid = isinstance(value, int | float) and not isinstance(value, bool)
    if not valid or not math.isfinite(value) or value < 0 or value > MAX_WAIT_SECONDS:
        raise NonRetryableError(
            f"`{name}` must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}, not {value!r}"
        )
    return float(value)


def _timestamp(value: Any, name: str) -> datetime:
    """An ISO 8601 time; one without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise NonRetryableError(f"`{name}` must be an ISO 8601 time, not {value!r}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@registry.register(
    "fail",
    builtin=True,
    pure=True,
    outputs=(),
    description="Fail the step with a message (retried like any failure)",
)
async def fail(message: str = "failed") -> dict[str, Any]:
    raise TaskError(str(message))

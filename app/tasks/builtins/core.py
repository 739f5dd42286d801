"""The core built-in tasks, which need no connection: `set`, `log`, `sleep` and `fail`.

Each function's signature is its step's parameters: the registry derives the required and
optional parameters from it and binds the step's values by name.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from typing import Any

from app.errors import NonRetryableError, TaskError
from app.tasks.context import TaskContext
from app.tasks.registry import TaskRegistry

registry = TaskRegistry()

LOG_LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


@registry.register(
    "set",
    builtin=True,
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


@registry.register(
    "sleep",
    builtin=True,
    outputs=(),
    description="Wait for a number of seconds",
)
async def sleep(seconds: float, *, context: TaskContext) -> dict[str, Any]:
    # bool is an int in Python, but `sleep: true` is a mistake, not one second.
    valid = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    if not valid or not math.isfinite(seconds) or seconds < 0:
        raise NonRetryableError(
            f"sleep needs a finite, non-negative number of seconds, not {seconds!r}"
        )
    if context.timeout is not None and seconds >= context.timeout:
        # It would time out: say so now rather than hold a worker slot until it does.
        raise TimeoutError(
            f"sleep of {seconds:g}s cannot end within the attempt's timeout of "
            f"{context.timeout:g}s (the step's `timeout`, or the setting "
            "MAX_STEP_TIMEOUT_SECONDS for a step without one)"
        )
    await asyncio.sleep(seconds)
    return {}


@registry.register(
    "fail",
    builtin=True,
    outputs=(),
    description="Fail the step with a message (retried like any failure)",
)
async def fail(message: str = "failed") -> dict[str, Any]:
    raise TaskError(str(message))

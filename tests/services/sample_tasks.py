"""Tasks the service tests load through TASK_MODULES; they record what ran in-process."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from app.tasks import TaskError, TaskRegistry

registry = TaskRegistry()
calls: Counter[str] = Counter()
failures_left: Counter[str] = Counter()
gates: dict[str, asyncio.Event] = {}


@registry.register("Count")
async def count(name: str) -> dict[str, Any]:
    calls[name] += 1
    return {"calls": calls[name]}


@registry.register("Values")
async def values(values: dict[str, Any]) -> dict[str, Any]:
    """`set`, but a task with effects as far as the engine knows (not `pure`)."""
    return dict(values)


@registry.register("FailUntilAllowed")
async def fail_until_allowed(name: str) -> dict[str, Any]:
    calls[name] += 1
    if failures_left[name] > 0:
        failures_left[name] -= 1
        raise TaskError(f"{name} is not allowed yet")
    return {"calls": calls[name]}


@registry.register("WaitForGate")
async def wait_for_gate(name: str) -> dict[str, Any]:
    calls[name] += 1
    await gates.setdefault(name, asyncio.Event()).wait()
    return {"opened": True}

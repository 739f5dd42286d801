"""Tasks the benchmarks load through TASK_MODULES."""

from __future__ import annotations

from typing import Any

from app.tasks import TaskRegistry

registry = TaskRegistry()


@registry.register("Values")
async def values(values: dict[str, Any]) -> dict[str, Any]:
    """`set`, but a task with effects as far as the engine knows (not `pure`): a fan-out of
    it is shared with the other workers, as a fan-out of real work would be."""
    return dict(values)

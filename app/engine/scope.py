"""What expressions see while a run executes: inputs, context and each finished step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain.runs import RunError, TaskStatus


class StepView(dict[str, Any]):
    """A finished step as expressions see it: its outputs plus `status` and `error`.

    A step that did not complete (skipped, failed, cancelled) reads as null for every output,
    so `${fetch.rows}` after a skipped `fetch` is null rather than an error.
    """

    __slots__ = ("completed",)

    def __init__(
        self, status: TaskStatus, outputs: Mapping[str, Any] | None, error: RunError | None
    ) -> None:
        super().__init__(outputs or {})
        self["status"] = status.value
        self["error"] = {"type": error.type, "message": error.message} if error else None
        self.completed = status is TaskStatus.COMPLETED

    def __missing__(self, key: str) -> Any:
        if self.completed:
            raise KeyError(key)
        return None


def context_value(
    run_id: str, flow: str, attempt: int, last_error: RunError | None
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "flow": flow,
        "attempt": attempt,
        "last_error": (
            {"step": last_error.step, "type": last_error.type, "message": last_error.message}
            if last_error
            else None
        ),
    }

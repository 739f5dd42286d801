"""What the engine tells about the work it does, for metrics, logs and traces: a small port.

The engine calls an `EngineObserver` around each attempt of a task and when a task (a step,
or one element of a fan-out) settles; and, for progress displays (`python -m app run` on a
terminal, `watch`), when a step starts, how many elements its fan-out has, when each element
settles and when the step does. The base class does nothing, and is what library use
gets; the service's implementation (`app/services/observability/observer.py`) counts, tags
log lines and opens spans. The engine itself imports no metrics, logging or tracing library.

The calls sit on the hot path: each is a plain method call, and an implementation must keep
its work per call to a few dictionary lookups and increments.
"""

from __future__ import annotations

from typing import Any

from app.domain.runs import TaskKey, TaskStatus


class EngineObserver:
    """Does nothing; the service's observer overrides what it needs."""

    def attempt_started(self, run_id: str, flow: str, key: TaskKey, task: str, attempt: int) -> Any:
        """An attempt of the task `key` (of type `task`) starts; what it returns is given back
        to `attempt_ended`, in the same asyncio task."""
        return None

    def attempt_ended(self, started: Any, status: TaskStatus, *, retried: bool) -> None:
        """The attempt ended: completed, or failed (`retried`: another attempt follows)."""

    def task_settled(self, flow: str, task: str, status: TaskStatus, seconds: float | None) -> None:
        """A task reached its outcome after `seconds` of attempts (None: it never ran, as
        for a skipped step)."""

    def step_started(self, run_id: str, step_id: str) -> None:
        """A step's condition held: its task (or its fan-out) starts."""

    def elements_expanded(self, run_id: str, step_id: str, count: int) -> None:
        """A started step fans out into `count` elements (never called for zero)."""

    def element_settled(self, run_id: str, key: TaskKey, status: TaskStatus) -> None:
        """One element of a fan-out reached its outcome."""

    def step_settled(self, run_id: str, step_id: str, status: TaskStatus) -> None:
        """A step reached its outcome: every step the run settles, skipped ones too (those
        are never started). Steps still running when the run fails or is cancelled are
        cancelled without this call."""


NO_OBSERVER = EngineObserver()

"""The engine's view of storage: the transitions of a run, reported as they happen.

The engine never imports a database library. It reports each transition to a `RunStore`; the
in-memory store (`memory_store.py`) serves library use and unit tests, the SQLAlchemy store of
the service persists the same calls. `task_finished` carries the steps a finish releases so a
durable store can commit the result and the release in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus


@dataclass(frozen=True)
class NewRun:
    run_id: str
    flow: str
    inputs: Mapping[str, Any]
    steps: Sequence[str]  # every step id, in definition order
    ready: Sequence[str]  # the steps that wait for nothing
    started_at: datetime
    fresh: bool = True  # False when resuming: the steps to run may have tasks from before


@dataclass(frozen=True)
class RunEnd:
    """How a run ended."""

    status: RunStatus
    outputs: Mapping[str, Any] | None
    error: RunError | None
    at: datetime


class RunStore(Protocol):
    async def run_started(self, run: NewRun) -> None:
        """The run starts: one pending task per step to run, the ready ones queued."""

    async def tasks_expanded(self, run_id: str, step_id: str, count: int) -> None:
        """A `for_each` step fans out into `count` tasks (indexes 0..count-1)."""

    async def task_started(self, run_id: str, key: TaskKey, attempt: int, at: datetime) -> None:
        """An attempt of a task starts."""

    async def attempt_failed(
        self, run_id: str, key: TaskKey, attempt: int, error: RunError, retry_at: datetime
    ) -> None:
        """An attempt failed and will be retried at `retry_at`."""

    async def task_finished(
        self,
        run_id: str,
        key: TaskKey,
        status: TaskStatus,
        outputs: Mapping[str, Any] | None,
        error: RunError | None,
        at: datetime,
        released: Sequence[str] = (),
        step_finished: bool = True,
        ended: RunEnd | None = None,
    ) -> None:
        """A task completed, failed or was skipped; `released` steps are now ready.

        `step_finished` is False for the elements of a fan-out that finish before its last.
        A failed task also cancels the unfinished tasks of its step (a fan-out stops at its
        first failed element). With `ended`, the task's step ended the run: the same
        transaction ends the run as `run_finished` would.
        """

    async def run_finished(
        self,
        run_id: str,
        status: RunStatus,
        outputs: Mapping[str, Any] | None,
        error: RunError | None,
        at: datetime,
    ) -> None:
        """The run ends; its unfinished tasks are cancelled."""

"""A run's vocabulary: its statuses and its tasks' statuses, a task's key, why a run failed.

Every layer names runs with these words; the engine decides the transitions, the store keeps
them, the API answers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.errors import storable_text


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskStatus(StrEnum):
    PENDING = "pending"  # waits for other steps
    QUEUED = "queued"  # ready to run
    RUNNING = "running"
    WAITING = "waiting"  # a sleep, a signal or a child run: the run may be parked meanwhile
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


# A signal's name (POST /runs/{id}/signals/{name}, a `wait_for`'s `signal`).
SIGNAL_NAME_PATTERN = r"[A-Za-z0-9_.-]{1,128}"

ACTIVE_RUN_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
FINISHED_RUN_STATUSES = frozenset(RunStatus) - ACTIVE_RUN_STATUSES
RETRYABLE_RUN_STATUSES = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})
UNFINISHED_TASK_STATUSES = frozenset(
    {TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.WAITING}
)
FINISHED_TASK_STATUSES = frozenset(TaskStatus) - UNFINISHED_TASK_STATUSES


@dataclass(frozen=True)
class TaskKey:
    """One task of a run: a step, or one element of a fanned-out step."""

    step_id: str
    task_index: int = 0


@dataclass(frozen=True)
class RunError:
    """Why a run or a step failed: the shape of the API's `error` fields."""

    step: str | None
    type: str
    message: str

    def __post_init__(self) -> None:
        """Every error can be stored and answered: unstorable characters become U+FFFD, and a
        message is cut at MAX_ERROR_MESSAGE_CHARS (an exception's text may hold anything)."""
        for name in ("step", "type", "message"):
            text = getattr(self, name)
            if text is not None:
                kept = storable_text(text)
                if kept is not text:
                    object.__setattr__(self, name, kept)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "type": self.type, "message": self.message}

    @classmethod
    def of(cls, value: Any) -> RunError | None:
        """The error a store kept as `as_dict` made it (None for none)."""
        if not value:
            return None
        return cls(value.get("step"), value.get("type", "Error"), value.get("message", ""))

"""What a running task may learn about its run: ids, attempt number, how long the attempt
may run, and a logger.

The logger writes to the process's logs (logger `app.tasks`, tagged with the run, step and
attempt) and keeps each line it is given at INFO or above in the attempt's `TaskLog`, which
the engine stores with the attempt's outcome (`GET /runs/{id}/steps/{step_id}/logs`). What an
attempt keeps is bounded: past `max_bytes` of messages, later lines are dropped and a last
line says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from app.domain.clock import utcnow
from app.domain.records import AttemptLog, LogLine

_logger = logging.getLogger("app.tasks")

KEPT_LEVEL = logging.INFO  # lines below it go to the process's logs only
LINE_OVERHEAD = 48  # what a kept line costs besides its message (its time and level)


class TaskLog:
    """The lines of one attempt, kept up to `max_bytes` (messages as UTF-8, plus a little
    per line). Made for every attempt: its slots keep it as cheap as an empty list."""

    __slots__ = ("lines", "max_bytes", "size", "truncated")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.lines: list[LogLine] = []
        self.size = 0
        self.truncated = False

    def add(self, levelno: int, message: str) -> None:
        if self.truncated or levelno < KEPT_LEVEL:
            return
        cost = len(message.encode("utf-8", "replace")) + LINE_OVERHEAD
        level = logging.getLevelName(levelno).lower()
        if self.size + cost <= self.max_bytes:
            self.size += cost
            self.lines.append(LogLine(utcnow(), level, message))
            return
        self.truncated = True
        room = max(0, self.max_bytes - self.size - LINE_OVERHEAD)
        if room:  # what fits of the line that does not
            cut = message.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
            self.lines.append(LogLine(utcnow(), level, cut))
        note = (
            f"[truncated: this attempt's log reached {self.max_bytes} bytes "
            "(MAX_TASK_LOG_BYTES); later lines were dropped]"
        )
        self.lines.append(LogLine(utcnow(), "warning", note))

    def kept(self, attempt: int) -> AttemptLog | None:
        """What the attempt keeps; None when it logged nothing worth keeping."""
        if not self.lines:
            return None
        return AttemptLog(attempt, tuple(self.lines), self.truncated)


class _AttemptLogger(logging.LoggerAdapter[logging.Logger]):
    """Logs to `app.tasks` with the attempt's fields, and keeps the line in its `TaskLog`."""

    def __init__(self, extra: dict[str, Any], log: TaskLog | None) -> None:
        super().__init__(_logger, extra)
        self.kept = log

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.kept is not None and level >= KEPT_LEVEL:
            self.kept.add(level, _message(msg, args))
        super().log(level, msg, *args, **kwargs)


def _message(msg: object, args: tuple[Any, ...]) -> str:
    """The line as logging would write it (a bad format is the task's own mistake: its parts
    are kept as they are)."""
    if not args:
        return str(msg)
    if len(args) == 1 and isinstance(args[0], dict) and args[0]:
        args = args[0]  # type: ignore[assignment]  # logging's `%(name)s` form
    try:
        return str(msg) % args
    except (TypeError, ValueError, KeyError):
        return f"{msg} {args!r}"


@dataclass(frozen=True)
class TaskContext:
    run_id: str
    flow: str
    step_id: str
    task_index: int = 0
    attempt: int = 1
    logger: logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.LoggerAdapter(_logger, {})
    )
    # Seconds this attempt may run before it fails with TimeoutError: the step's `timeout`, or
    # in the service MAX_STEP_TIMEOUT_SECONDS for a step without one. None: no limit.
    timeout: float | None = None

    @classmethod
    def for_attempt(
        cls,
        run_id: str,
        flow: str,
        step_id: str,
        task_index: int,
        attempt: int,
        *,
        timeout: float | None = None,
        log: TaskLog | None = None,
    ) -> TaskContext:
        """`log`: where the attempt's lines are kept (None: the process's logs only)."""
        extra: dict[str, Any] = {
            "run_id": run_id,
            "flow": flow,
            "step_id": step_id,
            "task_index": task_index,
            "attempt": attempt,
        }
        return cls(run_id, flow, step_id, task_index, attempt, _AttemptLogger(extra, log), timeout)

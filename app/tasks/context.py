"""What a running task may learn about its run: ids, attempt number, how long the attempt
may run, and a logger."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

_logger = logging.getLogger("app.tasks")


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
    ) -> TaskContext:
        extra: dict[str, Any] = {
            "run_id": run_id,
            "flow": flow,
            "step_id": step_id,
            "task_index": task_index,
            "attempt": attempt,
        }
        return cls(
            run_id,
            flow,
            step_id,
            task_index,
            attempt,
            logging.LoggerAdapter(_logger, extra),
            timeout,
        )

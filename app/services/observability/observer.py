"""`ServiceObserver`: the engine's observer in the service (`app/engine/observer.py`).

Around each attempt it tags the lines logged meanwhile with the step and the attempt
(`logs.bind`), opens the attempt's span (`Tracing`: nothing without the otel extra), and
counts (attempts, retries, tasks by type and outcome, their durations) into the process's
`Metrics`.
"""

from __future__ import annotations

from typing import Any

from app.domain.runs import TaskKey, TaskStatus
from app.engine.observer import EngineObserver
from app.services.observability import logs
from app.services.observability.metrics import Metrics
from app.services.observability.traces import Tracing


class ServiceObserver(EngineObserver):
    def __init__(self, metrics: Metrics, tracing: Tracing) -> None:
        self.metrics = metrics
        self.tracing = tracing

    def attempt_started(self, run_id: str, flow: str, key: TaskKey, task: str, attempt: int) -> Any:
        bound = logs.bind(step_id=key.step_id, task_index=key.task_index, attempt=attempt)
        span = self.tracing.attempt_started(run_id, key, task, attempt)
        return task, bound, span

    def attempt_ended(self, started: Any, status: TaskStatus, *, retried: bool) -> None:
        task, bound, span = started
        self.tracing.attempt_ended(span, status)
        logs.unbind(bound)
        self.metrics.attempt_ended(task, status, retried)

    def task_settled(self, flow: str, task: str, status: TaskStatus, seconds: float | None) -> None:
        self.metrics.task_settled(task, status, seconds)

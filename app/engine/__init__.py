"""The engine: runs a flow definition's steps in order, with retries, timeouts and fan-out."""

from app.domain.runs import RunStatus, TaskStatus
from app.engine.executor import FlowExecutor
from app.engine.run import RunResult
from app.engine.store import RunStore

__all__ = ["FlowExecutor", "RunResult", "RunStatus", "RunStore", "TaskStatus"]

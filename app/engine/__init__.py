"""The engine: runs a flow definition's steps in order, with retries, timeouts and fan-out."""

from app.engine.executor import FlowExecutor
from app.engine.run import RunResult
from app.engine.store import RunStatus, RunStore, TaskStatus

__all__ = ["FlowExecutor", "RunResult", "RunStatus", "RunStore", "TaskStatus"]

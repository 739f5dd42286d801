"""Tasks: the registry of named Python functions that steps run, and the built-in tasks."""

from app.errors import NonRetryableError, TaskError
from app.tasks.context import TaskContext
from app.tasks.registry import RegisteredTask, TaskRegistry

__all__ = ["NonRetryableError", "RegisteredTask", "TaskContext", "TaskError", "TaskRegistry"]

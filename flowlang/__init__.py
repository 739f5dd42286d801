"""`flowlang`: the FlowLang tutorial's names for Flow Manager's library, so that its files run
unedited (`from flowlang import TaskRegistry`, `from flowlang import FlowExecutor`).

Re-exports only: every name here is the one of `app`, never a second implementation.
"""

from app.engine import FlowExecutor, RunResult
from app.errors import (
    DefinitionError,
    FlowFailedError,
    InputValidationError,
    NonRetryableError,
    TaskError,
)
from app.tasks import TaskContext, TaskRegistry

__all__ = [
    "DefinitionError",
    "FlowExecutor",
    "FlowFailedError",
    "InputValidationError",
    "NonRetryableError",
    "RunResult",
    "TaskContext",
    "TaskError",
    "TaskRegistry",
]

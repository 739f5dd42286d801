"""Shared fan-outs: the elements of a large `for_each` that any worker may claim.

The run's owner hands the elements to the store (`SharedFanOut`) and parks the run; workers
claim batches of them (`ElementWork`), each element under a lease of its own, and record their
ends (`ElementFinish`); the run, woken by the last end (or the first failure), reads what
they made (`FanOutResult`) in element order. docs/architecture.md, "Fan-out across workers".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.runs import RunError, TaskKey, TaskStatus


@dataclass(frozen=True)
class SharedFanOut:
    """A fan-out handed to the workers by its run's owner."""

    step_id: str
    items: Sequence[Any]  # one per element, in element order
    # What the step's expressions read besides the element: `inputs` and the views of the
    # steps they name (`{status, error, <outputs>}`), as plain JSON.
    scope: Mapping[str, Any]
    last_error: RunError | None  # a handler step's `context.last_error`
    max_concurrency: int  # elements of this fan-out running at once, across all workers


@dataclass(frozen=True)
class FanOutResult:
    """A shared fan-out that ended: every element's outputs in element order, or the failed
    element (the first to fail) and its error."""

    outputs: Sequence[Mapping[str, Any] | None] = ()
    failed: TaskKey | None = None
    error: RunError | None = None


@dataclass(frozen=True)
class ClaimedElement:
    task_id: int  # its row: the key of its lease
    index: int
    item: Any
    attempts: int  # attempts made before (an element taken over from a dead worker)


@dataclass(frozen=True)
class ElementWork:
    """Elements of one shared fan-out a worker claimed, each leased to it."""

    run_id: str
    step_id: str
    definition_id: int
    scope: Mapping[str, Any]
    last_error: RunError | None
    elements: Sequence[ClaimedElement]


@dataclass(frozen=True)
class ElementFinish:
    """An element's end, recorded only while its worker still holds its lease."""

    run_id: str
    step_id: str
    task_id: int
    index: int
    status: TaskStatus  # completed or failed
    outputs: Mapping[str, Any] | None
    error: RunError | None
    attempts: int
    at: datetime

"""What differs between two runs, step by step (GET /runs/{a}/diff/{b})."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.records import RunRecord, StepRecord
from app.domain.runs import RunError

# The fields of a task compared, in the order they are answered.
STEP_FIELDS = ("status", "outputs", "error", "attempts")


@dataclass(frozen=True)
class ValueDiff:
    """A field's value in each run."""

    a: Any
    b: Any


@dataclass(frozen=True)
class StepDiff:
    """One task (a step, or an element of a fan-out) in both runs: `differences` by field,
    empty when they agree. A task one run has not: its fields are null in that run."""

    step_id: str
    task_index: int
    differences: dict[str, ValueDiff]

    @property
    def same(self) -> bool:
        return not self.differences


@dataclass(frozen=True)
class RunDiff:
    a: RunRecord
    b: RunRecord
    inputs: ValueDiff | None  # None when the inputs are the same
    steps: tuple[StepDiff, ...]

    @property
    def same(self) -> bool:
        return self.inputs is None and all(step.same for step in self.steps)


def diff_runs(a: RunRecord, b: RunRecord) -> RunDiff:
    """The runs compared, task by task: `a`'s tasks in its order, then those only `b` has."""
    theirs = {(task.step_id, task.task_index): task for task in b.steps}
    ours = {(task.step_id, task.task_index): task for task in a.steps}
    keys = list(ours) + [key for key in theirs if key not in ours]
    steps = tuple(
        StepDiff(
            step_id, index, _differences(ours.get((step_id, index)), theirs.get((step_id, index)))
        )
        for step_id, index in keys
    )
    inputs = None if a.inputs == b.inputs else ValueDiff(a.inputs, b.inputs)
    return RunDiff(a, b, inputs, steps)


def _differences(a: StepRecord | None, b: StepRecord | None) -> dict[str, ValueDiff]:
    mine, yours = _fields(a), _fields(b)
    return {
        name: ValueDiff(mine[name], yours[name])
        for name in STEP_FIELDS
        if mine[name] != yours[name]
    }


def _fields(task: StepRecord | None) -> dict[str, Any]:
    if task is None:
        return dict.fromkeys(STEP_FIELDS)
    return {
        "status": task.status,
        "outputs": task.outputs,
        "error": _error(task.error),
        "attempts": task.attempts,
    }


def _error(error: RunError | None) -> Any:
    return None if error is None else error.as_dict()

"""What a fork of a run keeps: the source run's completed steps that do not depend on the
step it is forked from, their recorded outputs patched where asked.

The fork is then an ordinary run resumed from its stored tasks (`resume.Resumption`): the
tasks kept here are copied into it as completed, and the resumption keeps exactly them,
since a kept step's dependencies are all kept (`kept_on_retry`). Nothing else skips steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from app.domain.records import StepRecord
from app.domain.runs import TaskStatus
from app.dsl.models import FlowDefinition
from app.engine.resume import kept_on_retry, previous_outcomes
from app.errors import RequestError


@dataclass(frozen=True)
class ForkPlan:
    """The tasks a fork copies from its source run, and the steps it runs (in order)."""

    kept_tasks: tuple[StepRecord, ...]
    steps_to_run: tuple[str, ...]


def plan_fork(
    definition: FlowDefinition,
    source_steps: Sequence[StepRecord],
    from_step: str,
    patches: Mapping[str, Mapping[str, Any]],
) -> ForkPlan:
    """The fork of a run with `source_steps` from `from_step`, on `definition` (the fork's
    version). `patches`: `{step_id: {output: value}}` laid over the recorded outputs of kept
    steps (the keys given replace those recorded). RequestError (422) for a `from_step` that
    is not a step of the version, or a patch of a step that is not kept."""
    if from_step not in definition.dependencies:
        raise RequestError(
            f"the flow's version has no step {from_step!r}", loc=("body", "from_step")
        )
    completed = {
        step_id: outcome
        for step_id, outcome in previous_outcomes(definition, source_steps).items()
        if outcome.status is TaskStatus.COMPLETED and step_id != from_step
    }
    # A step that depends on `from_step`, however far, has a dependency not kept.
    kept = kept_on_retry(definition, completed)
    fanned_out = {step.id for step in definition.steps if step.for_each is not None}
    for step_id in patches:
        place = ("body", "outputs", step_id)
        if step_id not in kept:
            raise RequestError(
                f"step {step_id!r} is not kept by the fork (it runs, or did not complete): "
                "only a kept step's outputs can be patched",
                loc=place,
            )
        if step_id in fanned_out:
            raise RequestError(
                f"step {step_id!r} fans out: its elements' outputs cannot be patched",
                loc=place,
            )
    tasks = tuple(
        _patched(task, patches.get(task.step_id)) for task in source_steps if task.step_id in kept
    )
    to_run = tuple(step.id for step in definition.steps if step.id not in kept)
    return ForkPlan(tasks, to_run)


def _patched(task: StepRecord, patch: Mapping[str, Any] | None) -> StepRecord:
    if patch is None:
        return task
    recorded = task.outputs if isinstance(task.outputs, Mapping) else {}
    return replace(task, outputs={**recorded, **patch})

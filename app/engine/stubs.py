"""Stubbed steps: steps whose outputs are given instead of made by running their task.

`python -m app test` replays a flow with some steps stubbed (a recorded run's database query,
an HTTP call made offline). A stubbed step does not run, whatever its `if`: at its turn it
counts as completed with the given outputs, as its task had returned them, and the steps
after it see them as they would see its task's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain.runs import TaskKey, TaskStatus
from app.dsl.models import FlowDefinition
from app.engine.attempts import TaskOutcome
from app.engine.limits import RunLimits, step_outputs
from app.errors import OutputTooLargeError, Problem, StubError, UnstorableValueError


def stubbed_outcomes(
    definition: FlowDefinition, stubs: Mapping[str, Any], limits: RunLimits
) -> dict[str, TaskOutcome]:
    """Each stubbed step's outcome; StubError listing every stub that does not fit.

    A stub is a mapping of the step's outputs (a fan-out's: each output's list of values, as
    the step's outputs read after it). It holds at least the outputs the step declares, and
    is kept as a task's outputs are: storable, within MAX_STEP_OUTPUT_BYTES."""
    steps = {step.id: step for step in definition.steps}
    problems: list[Problem] = []
    outcomes: dict[str, TaskOutcome] = {}
    for step_id, outputs in stubs.items():
        loc = ("stubs", step_id)
        step = steps.get(step_id)
        if step is None:
            known = ", ".join(sorted(steps))
            problems.append(Problem(loc, f"the flow has no step {step_id!r} (its steps: {known})"))
            continue
        if not isinstance(outputs, Mapping):
            problems.append(Problem(loc, "a stub is a mapping of the step's outputs"))
            continue
        missing = [name for name in step.outputs or () if name not in outputs]
        if missing:
            problems.append(
                Problem(loc, f"the step declares the output(s) {', '.join(missing)}: stub them")
            )
            continue
        try:
            kept = step_outputs(limits, step_id, dict(outputs))
        except (UnstorableValueError, OutputTooLargeError) as error:
            problems.append(Problem(loc, error.message))
            continue
        key = TaskKey(step_id)
        if step.for_each is None:
            outcomes[step_id] = TaskOutcome(key, TaskStatus.COMPLETED, kept.value, size=kept.size)
        else:  # what a fan-out's later steps see: the collected outputs, no element of its own
            outcomes[step_id] = TaskOutcome(
                key, TaskStatus.COMPLETED, None, None, kept.value, kept.size
            )
    if problems:
        raise StubError(problems)
    return outcomes

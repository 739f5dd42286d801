"""Resuming a run from what an earlier execution of it kept: retry and take-over are one call.

A retried run (failed or cancelled) and a run taken over from a dead worker both go on from
their stored tasks: the steps that finished are kept (`kept_on_retry`), the attempts that were
under way continue where they were (`resume_points`), and the rest runs anew.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.domain.records import StepRecord
from app.domain.runs import TaskKey, TaskStatus
from app.dsl.models import FlowDefinition
from app.engine.attempts import ResumePoint, TaskOutcome
from app.engine.run import collect_outputs
from app.engine.store import StoredRun


@dataclass(frozen=True)
class Resumption:
    """Where a run resumes: the steps it keeps, and where the unfinished attempts continue."""

    restored: dict[str, TaskOutcome]
    points: dict[str, ResumePoint]
    waiting: dict[str, datetime | None]  # steps still waiting, with the time they wait until
    untouched: frozenset[str] = frozenset()  # steps whose one task is pending, never run
    # Steps whose fan-out is in the workers' hands: neither kept nor run again; the run
    # waits for their elements (or reads how they ended).
    shared: frozenset[str] = frozenset()

    @classmethod
    def of(cls, definition: FlowDefinition, stored: StoredRun) -> Resumption:
        previous = previous_outcomes(definition, stored.steps)
        for step_id in stored.shared:  # settled by this execution, not kept from the last
            previous.pop(step_id, None)
        restored = kept_on_retry(definition, previous)
        waiting = {
            task.step_id: task.available_at
            for task in stored.steps
            if task.status is TaskStatus.WAITING and task.task_index == 0
        }
        rows: dict[str, list[StepRecord]] = defaultdict(list)
        for task in stored.steps:
            rows[task.step_id].append(task)
        untouched = frozenset(
            step_id
            for step_id, tasks in rows.items()
            if len(tasks) == 1 and tasks[0].status is TaskStatus.PENDING and not tasks[0].attempts
        )
        points = resume_points(definition, stored.steps)
        return cls(restored, points, waiting, untouched - stored.shared, stored.shared)


def steps_run_again(definition: FlowDefinition, steps: Sequence[StepRecord]) -> list[str]:
    """The steps a retried run runs again, in definition order: all but those it keeps."""
    kept = kept_on_retry(definition, previous_outcomes(definition, steps))
    return [step.id for step in definition.steps if step.id not in kept]


def previous_outcomes(
    definition: FlowDefinition, steps: Sequence[StepRecord]
) -> dict[str, TaskOutcome]:
    """Each step's result in an earlier execution, as the engine sees results."""
    rows: dict[str, list[StepRecord]] = defaultdict(list)
    for row in steps:
        rows[row.step_id].append(row)
    outcomes: dict[str, TaskOutcome] = {}
    for step in definition.steps:
        tasks = sorted(rows.get(step.id, ()), key=lambda task: task.task_index)
        if not tasks:
            continue
        if step.for_each is None or tasks[0].status is TaskStatus.SKIPPED:
            first = tasks[0]
            outcomes[step.id] = TaskOutcome(
                TaskKey(step.id), first.status, first.outputs, first.error
            )
        elif all(task.status is TaskStatus.COMPLETED for task in tasks):
            empty = len(tasks) == 1 and tasks[0].outputs is None  # a fan-out over no element
            collected = collect_outputs(step, [] if empty else [task.outputs for task in tasks])
            outcomes[step.id] = TaskOutcome(
                TaskKey(step.id), TaskStatus.COMPLETED, None, None, collected
            )
    return outcomes


def resume_points(
    definition: FlowDefinition, steps: Sequence[StepRecord]
) -> dict[str, ResumePoint]:
    """Where the attempts of the steps that were under way continue, when a run is taken over.

    A task left running was interrupted: its attempt runs again, under the same number. A
    task queued again after a failed attempt waits for its retry: the next attempt, at its
    `available_at`. Fan-outs start over (their elements are tasks of their own).
    """
    single = {step.id for step in definition.steps if step.for_each is None}
    points: dict[str, ResumePoint] = {}
    for task in steps:
        if task.step_id not in single or task.attempts == 0:
            continue
        if task.status is TaskStatus.RUNNING:
            points[task.step_id] = ResumePoint(task.attempts)
        elif task.status is TaskStatus.QUEUED and task.error is not None:
            points[task.step_id] = ResumePoint(task.attempts + 1, task.available_at)
    return points


def kept_on_retry(
    definition: FlowDefinition, previous: Mapping[str, TaskOutcome]
) -> dict[str, TaskOutcome]:
    """The steps a retried run keeps: completed or skipped, with every dependency kept too.

    A skip decided on the result of a step that runs again is decided again. Decided without
    recursion: a chain of thousands of steps, listed in any order, is as deep as it is long.
    """
    decided: dict[str, bool] = {}
    for start in previous:
        pending = [start]
        while pending:
            step_id = pending[-1]
            if step_id in decided:
                pending.pop()
                continue
            outcome = previous.get(step_id)
            if outcome is None or outcome.status not in (TaskStatus.COMPLETED, TaskStatus.SKIPPED):
                decided[step_id] = False
                pending.pop()
                continue
            dependencies = definition.dependencies[step_id]
            undecided = [dependency for dependency in dependencies if dependency not in decided]
            if undecided:
                pending.extend(undecided)
                continue
            decided[step_id] = all(decided[dependency] for dependency in dependencies)
            pending.pop()
    return {step_id: outcome for step_id, outcome in previous.items() if decided[step_id]}

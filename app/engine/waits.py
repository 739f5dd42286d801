"""Durable waits: what a waiting step (`sleep`, `wait_for`) waits for, and how it ends.

A waiting task's function does not wait: it answers what to wait for, `{until, signal}`
(`app/tasks/builtins/core.py`). `RunExecution` keeps the answer as a `Wait`, records the task
`waiting` with its `until`, and looks again whenever the run may have been woken. When only
waits are left the run parks (`RunStore.run_parked`): it gives up its lease until the earliest
`until`, or until a signal wakes it, and any process resumes it then, keeping the `until` its
task recorded (docs/architecture.md, "Parked runs").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.domain.clock import utcnow
from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus
from app.dsl.models import Step
from app.dsl.templates import render_all
from app.engine.attempts import TaskOutcome
from app.engine.children import ChildEnd
from app.engine.limits import RunLimits, step_outputs
from app.engine.store import Signal
from app.errors import ChildRunError, FlowManagerError, WaitTooLongError
from app.tasks.registry import RegisteredTask


@dataclass(frozen=True)
class Wait:
    """What a waiting task waits for: a signal, a time, or a signal until a time."""

    key: TaskKey
    until: datetime | None  # a sleep's end, or a signal's timeout; None: no limit
    signal: str | None = None
    recorded: bool = False  # its task row says `waiting`, with this `until`
    child: Mapping[str, Any] | None = None  # a child run to start: {flow, inputs, version}
    child_run_id: str | None = None  # the child run, once started
    elements: bool = False  # a shared fan-out's elements, run by the workers (`elements.py`)

    def due(self, now: datetime) -> bool:
        return self.until is not None and self.until <= now


async def requested_wait(
    task: RegisteredTask,
    step: Step,
    scope: Mapping[str, Any],
    limits: RunLimits,
    recorded_until: datetime | None,
    recorded: bool,
) -> Wait | TaskOutcome:
    """The step's wait, or its failure when its arguments are wrong. A wait its task already
    recorded (a resumed run) keeps the recorded `until`: a sleep resumed late is not
    lengthened."""
    key = TaskKey(step.id)
    try:
        asked = await task.invoke(render_all(step.arguments, scope), context=None)  # type: ignore[arg-type]
    except (FlowManagerError, ValueError, TypeError) as error:
        return TaskOutcome(key, TaskStatus.FAILED, None, _error(step, error))
    until: datetime | None = asked["until"]
    if step.timeout is not None and until is None:  # a `wait_for`'s: how long it waits
        until = utcnow() + timedelta(seconds=step.timeout)
    if recorded:
        until = recorded_until
    elif until is not None and _seconds_until(until) > limits.max_durable_wait_seconds:
        too_long = WaitTooLongError(
            f"{step.task} would wait until {until.isoformat()}; MAX_DURABLE_WAIT_SECONDS allows "
            f"{limits.max_durable_wait_seconds:g} seconds"
        )
        return TaskOutcome(key, TaskStatus.FAILED, None, _error(step, too_long))
    return Wait(key, until, asked["signal"], recorded, asked.get("child"))


def woken(
    wait: Wait, signal: Signal | None, child: ChildEnd | None, now: datetime, limits: RunLimits
) -> TaskOutcome | None:
    """How the wait ends, now that `signal` (if any) was taken and `child` (if any) ended;
    None while it goes on."""
    if wait.child is not None:
        return None if child is None else _child_outcome(wait.key, child, limits)
    if wait.signal is None:
        outputs: dict[str, Any] | None = {} if wait.due(now) else None
    elif signal is not None:
        outputs = {"payload": signal.payload, "timed_out": False}
    else:
        outputs = {"payload": None, "timed_out": True} if wait.due(now) else None
    if outputs is None:
        return None
    kept = step_outputs(limits, wait.key.step_id, outputs)  # a payload was checked when sent
    return TaskOutcome(wait.key, TaskStatus.COMPLETED, kept.value, None, size=kept.size)


def _child_outcome(key: TaskKey, child: ChildEnd, limits: RunLimits) -> TaskOutcome:
    """The step ends as its child run did: with its outputs, or failed with its error."""
    if child.status is RunStatus.COMPLETED:
        kept = step_outputs(limits, key.step_id, dict(child.outputs or {}))
        return TaskOutcome(key, TaskStatus.COMPLETED, kept.value, None, size=kept.size)
    why = f": {child.error.message}" if child.error is not None else ""
    failed = ChildRunError(f"child run {child.run_id} {child.status.value}{why}")
    return TaskOutcome(
        key, TaskStatus.FAILED, None, RunError(key.step_id, "ChildRunError", str(failed))
    )


def _seconds_until(moment: datetime) -> float:
    return (moment - utcnow()).total_seconds()


def _error(step: Step, error: Exception) -> RunError:
    return _error_of(step.id, error)


def _error_of(step_id: str, error: Exception) -> RunError:
    return RunError(step_id, type(error).__name__, str(error) or type(error).__name__)

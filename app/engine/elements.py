"""Running the elements of a shared fan-out in whichever worker claimed them.

A fan-out of at least `RunLimits.shared_fan_out_min` elements is handed to the store
(`RunStore.fan_out_shared`) by its run's execution, which then waits for it as for a child run
(`run.py`). Any worker claims batches of its elements (`ElementWork`); each runs here as the
run's own execution would have run it — the step's arguments rendered with the element, its
index, the run's inputs and the steps it names (`shared_scope`, kept with the fan-out), its
retries and its timeout — and its end is recorded by the worker under the element's lease.
Attempts are not written one by one (an element's row gets its last attempt's number with
its end): the element's lease, not the run's, guards what its worker writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from app.domain.elements import ClaimedElement, ElementWork, FanOutResult, SharedFanOut
from app.domain.records import AttemptLog
from app.domain.runs import RunError, TaskKey, TaskStatus
from app.dsl.models import Step
from app.engine.attempts import TaskOutcome, TaskRunner
from app.engine.scope import StepView
from app.engine.store import NewRun, RunEnd, Signal, StoredRun, TaskFinish


class ElementRunner(TaskRunner):
    """Runs claimed elements of one run's shared fan-outs (`FlowExecutor.element_runner`)."""

    def __init__(self, **arguments: Any) -> None:
        self.attempts = _Attempts()
        super().__init__(store=self.attempts, **arguments)

    async def run_element(
        self, step: Step, work: ElementWork, element: ClaimedElement
    ) -> tuple[TaskOutcome, int]:
        """The element's outcome (a failure's message names the element, as in a fan-out
        run in process) and the number of its last attempt."""
        assert step.for_each is not None
        scope = element_scope(work.scope)
        scope[step.for_each.variable] = element.item
        scope["index"] = element.index
        outcome = await self.run(step, element.index, scope, work.last_error)
        self.observer.element_settled(self.run_id, outcome.key, outcome.status)
        attempts = self.attempts.last.pop(outcome.key, 1)
        if outcome.status is TaskStatus.FAILED and outcome.error is not None:
            error = outcome.error
            named = RunError(error.step, error.type, f"element {element.index}: {error.message}")
            outcome = TaskOutcome(outcome.key, TaskStatus.FAILED, None, named, log=outcome.log)
        return outcome, attempts


def element_scope(shared: Mapping[str, Any]) -> dict[str, Any]:
    """A scope from what a shared fan-out keeps (`run.shared_scope`)."""
    scope: dict[str, Any] = {"inputs": shared.get("inputs") or {}}
    for name, view in (shared.get("steps") or {}).items():
        error = view.get("error")
        step_error = RunError(name, error["type"], error["message"]) if error else None
        scope[name] = StepView(TaskStatus(view["status"]), view.get("outputs"), step_error)
    return scope


class _Attempts:
    """The `RunStore` of an element's attempts: it writes nothing (the element's end is
    recorded by its worker), and keeps the number of each task's last attempt."""

    def __init__(self) -> None:
        self.last: dict[TaskKey, int] = {}

    async def task_started(self, run_id: str, key: TaskKey, attempt: int, at: datetime) -> None:
        self.last[key] = attempt

    async def committed(self, run_id: str) -> None:
        """Nothing to wait for: the run handed its fan-out over in a committed transaction."""

    async def attempt_failed(
        self,
        run_id: str,
        key: TaskKey,
        attempt: int,
        error: RunError,
        retry_at: datetime,
        log: AttemptLog | None = None,
    ) -> None:
        return None

    async def run_started(self, run: NewRun) -> None:
        raise NotImplementedError

    async def tasks_expanded(self, run_id: str, step_id: str, count: int) -> None:
        raise NotImplementedError

    async def task_finished(self, run_id: str, finish: TaskFinish) -> None:
        raise NotImplementedError

    async def run_finished(self, run_id: str, ended: RunEnd) -> None:
        raise NotImplementedError

    async def load(self, run_id: str) -> StoredRun:
        raise NotImplementedError

    async def task_waiting(self, run_id: str, key: TaskKey, until: datetime | None) -> None:
        raise NotImplementedError

    async def signal_taken(self, run_id: str, key: TaskKey, name: str) -> Signal | None:
        raise NotImplementedError

    async def run_parked(
        self,
        run_id: str,
        until: datetime | None,
        signals: Sequence[str],
        children: Sequence[str] = (),
        fan_outs: Sequence[str] = (),
    ) -> bool:
        raise NotImplementedError

    async def fan_out_shared(self, run_id: str, fan_out: SharedFanOut) -> bool:
        raise NotImplementedError

    async def fan_out_result(self, run_id: str, step_id: str) -> FanOutResult | None:
        raise NotImplementedError

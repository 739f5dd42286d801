"""`RunExecution`: one run of a flow, from its ready steps to its outputs.

Steps whose dependencies are all finished run concurrently; a lone ready step runs inline (no
task switch), which keeps sequential flows cheap. Each finished step is reported to the store
together with the steps it releases. A step that fails with `on_error: fail` fails the run and
cancels whatever else is running.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.domain.clock import utcnow
from app.domain.elements import SharedFanOut
from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus
from app.domain.storable import json_size, sized_json_data
from app.dsl.models import ErrorAction, FlowDefinition, FlowKind, Step
from app.engine.attempts import ResumePoint, TaskOutcome, TaskRunner
from app.engine.children import ChildRuns
from app.engine.limits import DocumentBudget
from app.engine.scope import StepView
from app.engine.store import NewRun, RunEnd, RunStore, TaskFinish
from app.engine.waits import Wait, requested_wait, woken
from app.errors import (
    ChildRunError,
    ExpressionError,
    FanOutTooLargeError,
    FlowManagerError,
    RunTooLargeError,
    UnstorableValueError,
    ValueTooLargeError,
)
from app.tasks.registry import RegisteredTask


@dataclass(frozen=True)
class RunResult:
    run_id: str
    flow: str
    status: RunStatus
    outputs: dict[str, Any] | None
    error: RunError | None
    started_at: datetime
    finished_at: datetime
    executed_steps: tuple[str, ...]  # steps that ran (not skipped), in the order they finished
    # The run parked (status `running`): only waits were left, and it gave up its lease until
    # this time (None: until a signal wakes it). Any process resumes it then.
    parked: bool = False
    parked_until: datetime | None = None

    @property
    def duration_ms(self) -> float:
        return (self.finished_at - self.started_at).total_seconds() * 1000


class RunExecution:
    def __init__(
        self,
        definition: FlowDefinition,
        inputs: Mapping[str, Any],
        run_id: str,
        runner: TaskRunner,
        store: RunStore,
        restored: Mapping[str, TaskOutcome] | None = None,
        resume: Mapping[str, ResumePoint] | None = None,
        stubs: Mapping[str, TaskOutcome] | None = None,
        waiting: Mapping[str, datetime | None] | None = None,
        children: ChildRuns | None = None,
        untouched: frozenset[str] = frozenset(),
        shared: frozenset[str] = frozenset(),
    ) -> None:
        """`restored`: steps finished by an earlier execution of this run (see
        `resume.kept_on_retry`), in the order they finished; they are not run again. None: the
        run is new. `resume`:
        where the attempts of steps that were under way resume (a run taken over). `stubs`:
        steps that do not run but, at their turn, finish as given (`stubs.stubbed_outcomes`).
        `waiting`: steps an earlier execution left waiting, with the time they wait until.
        `children`: where child runs start (the service); None: a `flow` step fails.
        `untouched`: steps of a resumed run whose task never ran (kept as it is). `shared`:
        steps of a resumed run whose fan-out is in the workers' hands (`elements.py`)."""
        self.definition = definition
        self.inputs = inputs
        self.run_id = run_id
        self.runner = runner
        self.store = store
        self.steps = {step.id: step for step in definition.steps}
        self.waiting = {step_id: set(deps) for step_id, deps in definition.dependencies.items()}
        self.dependents: dict[str, list[str]] = {step_id: [] for step_id in self.steps}
        for step_id, deps in definition.dependencies.items():
            for dependency in deps:
                self.dependents[dependency].append(step_id)
        self.scope: dict[str, Any] = {"inputs": inputs}
        self.errors: dict[str, RunError] = {}
        self.executed: list[str] = []
        self.ready: deque[str] = deque()
        self.running: dict[asyncio.Task[TaskOutcome], str] = {}
        self.resumed = restored is not None
        self.restored = dict(restored or {})
        self.resume = dict(resume or {})
        self.stubs = dict(stubs or {})
        self.recorded_waits = dict(waiting or {})
        self.children = children
        self.untouched = untouched
        self.waits: dict[str, Wait] = {}  # the waits of steps that wait, or waited, here
        self.parked_steps: set[str] = set()  # steps waiting now: neither ready nor running
        self.shared = set(shared)  # steps whose elements the workers run (shared fan-outs)
        self.limits = runner.limits
        self.budget = DocumentBudget(self.limits)
        for step_id, outcome in self.restored.items():
            self._record(step_id, outcome)
            self.budget.restore(outcome.visible_outputs)

    async def execute(self) -> RunResult:
        started_at = utcnow()
        to_run = [step_id for step_id in self.steps if step_id not in self.restored]
        self.ready.extend(step_id for step_id in to_run if not self.waiting[step_id])
        await self.store.run_started(
            NewRun(
                self.run_id,
                self.definition.name,
                self.inputs,
                to_run,
                [
                    step_id
                    for step_id in self.ready
                    if step_id not in self.recorded_waits and step_id not in self.shared
                ],
                started_at,
                resumed=self.resumed,
                waiting=[*self.recorded_waits, *sorted(self.shared)],
                untouched=[step_id for step_id in to_run if step_id in self.untouched],
            )
        )
        try:
            ended = await self._run_steps()
        except asyncio.CancelledError:
            await self._cancel_running()
            cancelled = RunEnd(RunStatus.CANCELLED, None, None, utcnow())
            await self.store.run_finished(self.run_id, cancelled)
            raise
        except Exception:  # the store refused a transition (or failed): stop, record nothing more
            await self._cancel_running()
            raise
        if ended is None:
            return self._parked_result(started_at)
        return RunResult(
            self.run_id,
            self.definition.name,
            ended.status,
            dict(ended.outputs) if ended.outputs is not None else None,
            ended.error,
            started_at,
            ended.at,
            tuple(self.executed),
        )

    async def _run_steps(self) -> RunEnd | None:
        """Run every step; how the run ended, or None when it parked."""
        if not self.ready:  # every step was restored: only the outputs remain
            ended = self._end()
            await self.store.run_finished(self.run_id, ended)
            return ended
        while True:
            if not self.ready and not self.running:  # only waits are left
                woken = await self._parked_or_woken()
                if woken is None:
                    return None
                self.ready.extend(woken)
                continue
            if len(self.ready) == 1 and not self.running:
                step = self.steps[self.ready.popleft()]
                end = await self._settle(step, await self._run_step(step))
                if end:
                    return end
                continue
            while self.ready:
                step_id = self.ready.popleft()
                self.running[asyncio.create_task(self._run_step(self.steps[step_id]))] = step_id
            done, _ = await asyncio.wait(
                self.running, timeout=self._until_next_wake(), return_when=asyncio.FIRST_COMPLETED
            )
            self.ready.extend(self._due_waits(utcnow()))
            for task in sorted(done, key=lambda task: self.running[task]):
                step = self.steps[self.running.pop(task)]
                end = await self._settle(step, task.result())
                if end:
                    return end

    async def _run_step(self, step: Step) -> TaskOutcome:
        stubbed = self.stubs.get(step.id)
        if stubbed is not None:  # given, not made: no condition, no attempt
            self.runner.observer.task_settled(
                self.definition.name, step.task, TaskStatus.COMPLETED, None
            )
            return stubbed
        key = TaskKey(step.id)
        last_error = None
        if step.handler_of is not None:
            last_error = self.errors.get(step.handler_of)
            if last_error is None:  # the handled step did not fail: nothing to handle
                return self._skipped(step)
        scope = dict(self.scope)
        if step.condition is not None:
            try:
                if not step.condition.evaluate(scope):
                    return self._skipped(step)
            except ExpressionError as error:
                return _failed(key, error, "if")
        self.runner.observer.step_started(self.run_id, step.id)
        task = self.runner.registry.get(step.task)
        if task.spec.waits:
            return await self._wait(step, task, scope)
        if step.for_each is not None:
            return await self._fan_out(step, scope, last_error)
        return await self.runner.run(
            step, 0, scope, last_error, self._offered(step), self.resume.get(step.id)
        )

    async def _wait(self, step: Step, task: RegisteredTask, scope: dict[str, Any]) -> TaskOutcome:
        """The step's wait: completed when it is over, else `waiting` (recorded once)."""
        wait = self.waits.get(step.id)
        if wait is None:
            recorded = step.id in self.recorded_waits
            until = self.recorded_waits.get(step.id)
            asked = await requested_wait(task, step, scope, self.limits, until, recorded)
            if isinstance(asked, TaskOutcome):
                return asked
            wait = self.waits[step.id] = asked
        if wait.child is not None and wait.child_run_id is None:
            started = await self._child_started(wait)
            if isinstance(started, TaskOutcome):
                return started
            wait = self.waits[step.id] = replace(wait, child_run_id=started)
        signal = child = None
        if wait.signal is not None:
            signal = await self.store.signal_taken(self.run_id, wait.key, wait.signal)
        if wait.child_run_id is not None:
            assert self.children is not None
            child = await self.children.ended(wait.child_run_id)
        outcome = woken(wait, signal, child, utcnow(), self.limits)
        if outcome is not None:
            self.runner.observer.task_settled(self.definition.name, step.task, outcome.status, None)
            return outcome
        if not wait.recorded:
            await self.store.task_waiting(self.run_id, wait.key, wait.until)
            self.waits[step.id] = replace(wait, recorded=True)
        return TaskOutcome(wait.key, TaskStatus.WAITING)

    async def _child_started(self, wait: Wait) -> str | TaskOutcome:
        """The id of the step's child run (started now, or before), or the step's failure."""
        assert wait.child is not None
        step_id = wait.key.step_id
        if self.children is None:
            error = ChildRunError("a `flow` step runs a child run in the service, not here")
            return TaskOutcome(wait.key, TaskStatus.FAILED, None, _run_error(step_id, error))
        child = wait.child
        # Starting a child is an effect: it comes after the steps before it are recorded
        # (and after the run itself, when it is created with its first progress).
        await self.store.committed(self.run_id)
        try:
            return await self.children.start(
                self.run_id,
                step_id,
                child["flow"],
                child["inputs"],
                child["version"],
                resume_failed=not wait.recorded,  # the step runs again: its parent was retried
            )
        except FlowManagerError as error:
            return TaskOutcome(wait.key, TaskStatus.FAILED, None, _run_error(step_id, error))

    async def _parked_or_woken(self) -> list[str] | None:
        """Only waits are left: the steps to look at again now (their time came, a signal
        did, or a child run ended), or None when the run parked."""
        due = self._due_waits(utcnow())
        if due:
            return due
        waits = [self.waits[step_id] for step_id in self.parked_steps]
        until = self._next_wake()
        signals = sorted({wait.signal for wait in waits if wait.signal is not None})
        children = [wait.child_run_id for wait in waits if wait.child_run_id is not None]
        fan_outs = [wait.key.step_id for wait in waits if wait.elements]
        if await self.store.run_parked(self.run_id, until, signals, children, fan_outs):
            return None
        woken_steps = sorted(self.parked_steps)
        self.parked_steps.clear()
        return woken_steps

    def _due_waits(self, now: datetime) -> list[str]:
        """The waiting steps whose time has come, no longer waiting."""
        due = sorted(step_id for step_id in self.parked_steps if self.waits[step_id].due(now))
        self.parked_steps.difference_update(due)
        return due

    def _next_wake(self) -> datetime | None:
        """The earliest time a waiting step waits until (None: they wait for signals or
        children only)."""
        times = [self.waits[step_id].until for step_id in self.parked_steps]
        return min((until for until in times if until is not None), default=None)

    def _until_next_wake(self) -> float | None:
        """Seconds until the earliest waiting step's time, while other steps run."""
        earliest = self._next_wake()
        if earliest is None:
            return None
        return max(0.0, (earliest - utcnow()).total_seconds())

    def _parked_result(self, started_at: datetime) -> RunResult:
        until = self._next_wake()
        return RunResult(
            self.run_id,
            self.definition.name,
            RunStatus.RUNNING,
            None,
            None,
            started_at,
            utcnow(),
            tuple(self.executed),
            parked=True,
            parked_until=until,
        )

    def _skipped(self, step: Step) -> TaskOutcome:
        self.runner.observer.task_settled(self.definition.name, step.task, TaskStatus.SKIPPED, None)
        return TaskOutcome(TaskKey(step.id), TaskStatus.SKIPPED)

    async def _fan_out(
        self, step: Step, scope: dict[str, Any], last_error: RunError | None
    ) -> TaskOutcome:
        assert step.for_each is not None
        if step.id in self.shared:  # its elements are in the workers' hands: ended yet?
            return await self._shared_outcome(step)
        try:
            items = step.for_each.items.render(scope)
        except ExpressionError as error:
            return _failed(TaskKey(step.id), error, "for_each")
        problem = None
        if not isinstance(items, list | tuple):
            problem = RunError(
                step.id, "TypeError", f"for_each must give a list, got {type(items).__name__}"
            )
        elif len(items) > self.limits.max_fan_out:
            problem = _run_error(
                step.id,
                FanOutTooLargeError(
                    f"for_each gave {len(items)} elements; MAX_FAN_OUT allows at most "
                    f"{self.limits.max_fan_out}"
                ),
            )
        if problem is not None:
            return TaskOutcome(TaskKey(step.id), TaskStatus.FAILED, None, problem)
        # A pure task's elements cost less than their claims (their ends share commits here):
        # only a fan-out of a task with effects is worth other workers' help.
        minimum = self.limits.shared_fan_out_min
        pure = self.runner.registry.get(step.task).spec.pure
        if minimum is not None and len(items) >= minimum and not pure:
            fan_out = SharedFanOut(
                step.id,
                items,
                shared_scope(step, scope),
                last_error,
                step.for_each.max_concurrency,
            )
            if await self.store.fan_out_shared(self.run_id, fan_out):
                self.shared.add(step.id)
                self.runner.observer.elements_expanded(self.run_id, step.id, len(items))
                return self._elements_pending(step)
        return await _FanOut(self, step, scope, items, last_error).run()

    def _elements_pending(self, step: Step) -> TaskOutcome:
        """The step waits for its shared fan-out's elements, as for a child run."""
        key = TaskKey(step.id)
        self.waits[step.id] = Wait(key, None, recorded=True, elements=True)
        return TaskOutcome(key, TaskStatus.WAITING)

    async def _shared_outcome(self, step: Step) -> TaskOutcome:
        """A shared fan-out's outcome once its elements ended (recorded by the workers that
        ran them: the step's settling writes only its release), else still waiting."""
        result = await self.store.fan_out_result(self.run_id, step.id)
        if result is None:
            return self._elements_pending(step)
        self.shared.discard(step.id)
        self.waits.pop(step.id, None)
        if result.failed is not None:
            error = result.error or RunError(step.id, "Error", "an element failed")
            return TaskOutcome(result.failed, TaskStatus.FAILED, None, error, recorded=True)
        outputs = result.outputs
        last = TaskKey(step.id, len(outputs) - 1)
        size = sum(json_size(dict(values)) for values in outputs if values)
        last_outputs = dict(outputs[-1]) if outputs[-1] is not None else None
        collected = collect_outputs(step, outputs)
        self.runner.observer.task_settled(
            self.definition.name, step.task, TaskStatus.COMPLETED, None
        )
        return TaskOutcome(
            last, TaskStatus.COMPLETED, last_outputs, None, collected, size, recorded=True
        )

    def _offered(self, step: Step) -> dict[str, Any] | None:
        """Condition-graph tasks are offered the outputs of the task that routed to them."""
        if self.definition.kind is not FlowKind.CONDITION_GRAPH:
            return None
        data: dict[str, Any] = {}
        for source in reversed(self.executed):
            if source in step.data_from:
                data = {
                    key: value
                    for key, value in self.scope[source].items()
                    if key not in ("status", "error")
                }
                break
        return {"data": data, "inputs": self.inputs}

    async def _settle(self, step: Step, outcome: TaskOutcome) -> RunEnd | None:
        """Record a finished step and release its dependents; how the run ended, if it did.

        The step that ends the run ends it in the same store call (one transaction).
        """
        if outcome.status is TaskStatus.WAITING:
            self.parked_steps.add(step.id)
            return None
        outcome = self._charged(outcome)
        self.runner.observer.step_settled(self.run_id, step.id, outcome.status)
        released = self._record(step.id, outcome)
        self.ready.extend(released)
        end = None
        fails_run = step.on_error is ErrorAction.FAIL or outcome.ends_run
        if outcome.status is TaskStatus.FAILED and fails_run:
            await self._cancel_running()
            end = RunEnd(RunStatus.FAILED, None, outcome.error, utcnow())
        elif not self.ready and not self.running and not self.parked_steps:
            end = self._end()
        finish = TaskFinish(
            outcome.key,
            outcome.status,
            outcome.outputs,
            outcome.error,
            utcnow(),
            released,
            ended=end,
            log=outcome.log,
            pure=self._pure(step, outcome),
            recorded=outcome.recorded,
        )
        await self.store.task_finished(self.run_id, finish)
        return end

    def _pure(self, step: Step, outcome: TaskOutcome) -> bool:
        """Whether the step's task had no effect outside the run (`TaskFinish.pure`)."""
        if outcome.status is TaskStatus.SKIPPED or step.id in self.stubs:
            return True
        return self.runner.registry.get(step.task).spec.pure

    def _charged(self, outcome: TaskOutcome) -> TaskOutcome:
        """The outcome, its outputs charged to the run's document; a failure that ends the run
        when they do not fit (nothing of them is stored)."""
        if outcome.status is not TaskStatus.COMPLETED or not outcome.size:
            return outcome
        fan_out = self.steps[outcome.key.step_id].for_each is not None
        refused = self.budget.charge(outcome.size, _outputs_of(outcome.key, fan_out))
        if refused is None:
            return outcome
        error = _run_error(outcome.key.step_id, refused)
        return TaskOutcome(
            outcome.key,
            TaskStatus.FAILED,
            None,
            error,
            ends_run=True,
            log=outcome.log,
            recorded=outcome.recorded,
        )

    def _record(self, step_id: str, outcome: TaskOutcome) -> list[str]:
        """Make a finished step visible to expressions; the dependents it releases."""
        self.scope[step_id] = StepView(outcome.status, outcome.visible_outputs, outcome.error)
        if outcome.error is not None:
            self.errors[step_id] = outcome.error
        if outcome.status is not TaskStatus.SKIPPED:
            self.executed.append(step_id)
        released = []
        for dependent in self.dependents[step_id]:
            waits = self.waiting[dependent]
            waits.discard(step_id)
            if not waits and dependent not in self.restored:
                released.append(dependent)
        return released

    async def _cancel_running(self) -> None:
        tasks = list(self.running)
        self.running.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _end(self) -> RunEnd:
        """Every step is settled: the run's outputs, or why they could not be made or kept."""
        outputs, failure = self._outputs()
        if outputs is not None:
            outputs, failure = self._kept(outputs)
        status = RunStatus.FAILED if failure else RunStatus.COMPLETED
        return RunEnd(status, outputs, failure, utcnow())

    def _kept(self, outputs: dict[str, Any]) -> tuple[dict[str, Any] | None, RunError | None]:
        """The run's outputs as stored: storable, and within what the run may still store."""
        try:
            kept = sized_json_data(outputs, root="outputs", max_bytes=self.budget.limit)
        except UnstorableValueError as error:
            message = f"the run's outputs cannot be stored: {error.message}"
            return None, RunError(None, type(error).__name__, message)
        except ValueTooLargeError as error:  # larger than the whole document may be
            too_large = RunTooLargeError(
                f"the run's outputs take at least {error.size} bytes as JSON; "
                f"MAX_RUN_DOCUMENT_BYTES allows {self.budget.limit} for all the run stores"
            )
            return None, _run_error(None, too_large)
        refused = self.budget.charge(kept.size, "the run's outputs")
        if refused is not None:
            return None, _run_error(None, refused)
        return kept.value, None

    def _outputs(self) -> tuple[dict[str, Any] | None, RunError | None]:
        if self.definition.kind is FlowKind.CONDITION_GRAPH:
            return self._last_task_outputs()
        outputs: dict[str, Any] = {}
        for output in self.definition.outputs:
            try:
                outputs[output.name] = output.value.render(self.scope)
            except ExpressionError as error:
                message = f"output {output.name!r}: {error.message}"
                return None, RunError(None, type(error).__name__, message)
        return outputs, None

    def _last_task_outputs(self) -> tuple[dict[str, Any] | None, RunError | None]:
        """Condition graphs: the run ends as its last executed task did."""
        if not self.executed:
            return {}, None
        last = self.executed[-1]
        if last in self.errors:
            return None, self.errors[last]
        view = self.scope[last]
        return {key: value for key, value in view.items() if key not in ("status", "error")}, None


class _FanOut:
    """One task per element, at most `max_concurrency` at a time, outputs in element order.

    The first element that fails (after its retries) fails the step and cancels the others.
    """

    def __init__(
        self,
        execution: RunExecution,
        step: Step,
        scope: dict[str, Any],
        items: list[Any] | tuple[Any, ...],
        last_error: RunError | None,
    ) -> None:
        assert step.for_each is not None
        self.execution = execution
        self.step = step
        self.for_each = step.for_each
        self.scope = scope
        self.items = items
        self.last_error = last_error
        self.results: list[dict[str, Any] | None] = [None] * len(items)
        self.unfinished = len(items)
        self.next_index = 0
        self.last_outcome: TaskOutcome | None = None

    async def run(self) -> TaskOutcome:
        execution = self.execution
        if not self.items:  # no element ran: the task row keeps no outputs of its own
            return TaskOutcome(
                TaskKey(self.step.id), TaskStatus.COMPLETED, None, None, self._collected()
            )
        await execution.store.tasks_expanded(execution.run_id, self.step.id, len(self.items))
        execution.runner.observer.elements_expanded(execution.run_id, self.step.id, len(self.items))
        workers = min(self.for_each.max_concurrency, len(self.items))
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(self._work())
        except ExceptionGroup as group:
            failures = group.subgroup(_ElementFailed)
            if failures is None:  # the store refused or failed: the caller sees its error
                raise group.exceptions[0] from None
            first = failures.exceptions[0]
            assert isinstance(first, _ElementFailed)
            return first.outcome
        last = self.last_outcome
        assert last is not None
        return TaskOutcome(
            last.key,
            TaskStatus.COMPLETED,
            last.outputs,
            None,
            self._collected(),
            last.size,
            log=last.log,
        )

    async def _work(self) -> None:
        execution = self.execution
        while self.next_index < len(self.items):
            index = self.next_index
            self.next_index += 1
            scope = dict(self.scope)
            scope[self.for_each.variable] = self.items[index]
            scope["index"] = index
            outcome = await execution.runner.run(self.step, index, scope, self.last_error)
            execution.runner.observer.element_settled(execution.run_id, outcome.key, outcome.status)
            if outcome.status is TaskStatus.FAILED:
                assert outcome.error is not None
                error = RunError(
                    outcome.error.step,
                    outcome.error.type,
                    f"element {index}: {outcome.error.message}",
                )
                failed = TaskOutcome(outcome.key, TaskStatus.FAILED, None, error, log=outcome.log)
                raise _ElementFailed(failed)
            self.results[index] = outcome.outputs
            self.unfinished -= 1
            if self.unfinished:
                refused = execution.budget.charge(outcome.size, _outputs_of(outcome.key, True))
                if refused is not None:
                    error = _run_error(self.step.id, refused)
                    raise _ElementFailed(
                        TaskOutcome(
                            outcome.key,
                            TaskStatus.FAILED,
                            None,
                            error,
                            ends_run=True,
                            log=outcome.log,
                        )
                    )
                finish = TaskFinish(
                    outcome.key,
                    outcome.status,
                    outcome.outputs,
                    None,
                    utcnow(),
                    step_finished=False,
                    log=outcome.log,
                    pure=execution._pure(self.step, outcome),
                )
                await execution.store.task_finished(execution.run_id, finish)
            else:  # the last element is recorded with the step's release, by _settle
                self.last_outcome = outcome

    def _collected(self) -> dict[str, Any]:
        return collect_outputs(self.step, self.results)


def shared_scope(step: Step, scope: Mapping[str, Any]) -> dict[str, Any]:
    """What a shared fan-out's elements read besides their own element, as plain JSON:
    `inputs` and the views of the steps the step's arguments name (`elements.element_scope`
    turns it back into a scope)."""
    roots = {
        reference.root for template in step.arguments.values() for reference in template.references
    }
    steps = {
        name: {"status": view["status"], "error": view["error"], "outputs": dict(view)}
        for name, view in scope.items()
        if name in roots and isinstance(view, StepView)
    }
    for view in steps.values():
        view["outputs"].pop("status", None)
        view["outputs"].pop("error", None)
    return {"inputs": scope["inputs"] if "inputs" in roots else {}, "steps": steps}


def collect_outputs(step: Step, results: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """A fan-out's outputs: for each output name, the list of the elements' values in order."""
    names = step.outputs
    if names is None:
        first = next((result for result in results if result), {})
        names = tuple(first)
    return {name: [(result or {}).get(name) for result in results] for name in names}


class _ElementFailed(Exception):
    def __init__(self, outcome: TaskOutcome) -> None:
        super().__init__(outcome.error.message if outcome.error else "element failed")
        self.outcome = outcome


def _failed(key: TaskKey, error: ExpressionError, field: str) -> TaskOutcome:
    return TaskOutcome(
        key,
        TaskStatus.FAILED,
        None,
        RunError(key.step_id, type(error).__name__, f"{field}: {error.message}"),
    )


def _run_error(step_id: str | None, error: Exception) -> RunError:
    return RunError(step_id, type(error).__name__, str(error))


def _outputs_of(key: TaskKey, fan_out: bool) -> str:
    """How an error names a task's outputs: `step 'fetch'`, or with its element."""
    element = f" (element {key.task_index})" if fan_out else ""
    return f"the outputs of step {key.step_id!r}{element}"

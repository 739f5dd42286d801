"""`InMemoryRunStore`: the run store of library use and of the engine's unit tests.

It keeps the most recent `max_runs` runs (oldest dropped first) so a long-lived process that
runs flows in a loop does not grow without bound.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.clock import utcnow
from app.domain.elements import FanOutResult, SharedFanOut
from app.domain.records import AttemptLog, StepRecord
from app.domain.runs import FINISHED_TASK_STATUSES, RunError, RunStatus, TaskKey, TaskStatus
from app.engine.store import NewRun, RunEnd, Signal, StoredRun, TaskFinish
from app.errors import UnknownRunError


@dataclass
class MemoryTask:
    """A task as the in-memory store keeps it (mutable; `StepRecord` is its frozen copy)."""

    key: TaskKey
    status: TaskStatus
    attempts: int = 0
    outputs: Mapping[str, Any] | None = None
    error: RunError | None = None
    available_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    logs: list[AttemptLog] = field(default_factory=list)  # what its attempts logged

    def record(self) -> StepRecord:
        return StepRecord(
            step_id=self.key.step_id,
            task_index=self.key.task_index,
            status=self.status,
            attempts=self.attempts,
            outputs=self.outputs,
            error=self.error,
            started_at=self.started_at,
            finished_at=self.finished_at,
            available_at=self.available_at,
        )


@dataclass
class SentSignal:
    signal: Signal
    taken_by: TaskKey | None = None


@dataclass
class MemoryRun:
    """A run as the in-memory store keeps it."""

    run_id: str
    flow: str
    inputs: Mapping[str, Any]
    status: RunStatus
    started_at: datetime | None
    tasks: dict[TaskKey, MemoryTask] = field(default_factory=dict)
    outputs: Mapping[str, Any] | None = None
    error: RunError | None = None
    finished_at: datetime | None = None
    signals: list[SentSignal] = field(default_factory=list)  # in the order they were sent

    @property
    def remaining_steps(self) -> int:
        unfinished = {
            key.step_id
            for key, task in self.tasks.items()
            if task.status not in FINISHED_TASK_STATUSES
        }
        return len(unfinished)


class InMemoryRunStore:
    def __init__(self, max_runs: int = 1000) -> None:
        self.max_runs = max_runs
        self.runs: OrderedDict[str, MemoryRun] = OrderedDict()
        self._wake_ups: dict[str, asyncio.Event] = {}  # runs waiting in memory for a signal

    def get(self, run_id: str) -> MemoryRun:
        return self.runs[run_id]

    async def load(self, run_id: str) -> StoredRun:
        run = self.runs.get(run_id)
        if run is None:
            raise UnknownRunError(f"no run has the id {run_id!r}")
        return StoredRun(run_id, run.inputs, [task.record() for task in run.tasks.values()])

    async def committed(self, run_id: str) -> None:
        """Nothing waits: every transition is applied as it is reported."""

    async def run_started(self, run: NewRun) -> None:
        ready = set(run.ready)
        record = self.runs.get(run.run_id) if run.resumed else None
        if record is None:
            record = MemoryRun(run.run_id, run.flow, dict(run.inputs), RunStatus.RUNNING, None)
            self.runs[run.run_id] = record
        # A resumed run keeps the tasks of the steps it does not run again, and of those waiting.
        replaced = set(run.replaced) if run.resumed else set(run.steps)
        # Elements of a fan-out go (it expands again); a step's own task is reset in its place.
        for key in [key for key in record.tasks if key.step_id in replaced and key.task_index]:
            del record.tasks[key]
        record.status = RunStatus.RUNNING
        if not (run.waiting and record.started_at):  # woken from its waits: it started before
            record.started_at = run.started_at
        record.outputs = record.error = record.finished_at = None
        for step_id in (step_id for step_id in run.steps if step_id in replaced):
            key = TaskKey(step_id)
            status = TaskStatus.QUEUED if step_id in ready else TaskStatus.PENDING
            record.tasks[key] = MemoryTask(key, status)
        for step_id in ready.intersection(run.untouched):  # kept pending, now ready
            record.tasks[TaskKey(step_id)].status = TaskStatus.QUEUED
        while len(self.runs) > self.max_runs:
            self.runs.popitem(last=False)

    async def tasks_expanded(self, run_id: str, step_id: str, count: int) -> None:
        tasks = self.runs[run_id].tasks
        status = tasks[TaskKey(step_id)].status
        for index in range(1, count):
            key = TaskKey(step_id, index)
            tasks[key] = MemoryTask(key, status)

    async def task_started(self, run_id: str, key: TaskKey, attempt: int, at: datetime) -> None:
        task = self.runs[run_id].tasks[key]
        task.status = TaskStatus.RUNNING
        task.attempts = attempt
        task.started_at = task.started_at or at

    async def attempt_failed(
        self,
        run_id: str,
        key: TaskKey,
        attempt: int,
        error: RunError,
        retry_at: datetime,
        log: AttemptLog | None = None,
    ) -> None:
        task = self.runs[run_id].tasks[key]
        if log is not None:
            task.logs.append(log)
        task.status = TaskStatus.QUEUED
        task.error = error
        task.available_at = retry_at

    async def task_finished(self, run_id: str, finish: TaskFinish) -> None:
        run = self.runs[run_id]
        task = run.tasks[finish.key]
        task.status = finish.status
        task.outputs = finish.outputs
        task.error = finish.error
        task.finished_at = finish.at
        if finish.log is not None:
            task.logs.append(finish.log)
        for step_id in finish.released:
            released = run.tasks[TaskKey(step_id)]
            if released.status is TaskStatus.PENDING:
                released.status = TaskStatus.QUEUED
        if finish.status is TaskStatus.FAILED:  # a failed element ends its fan-out
            _cancel_unfinished(run, finish.at, finish.key.step_id)
        if finish.ended is not None:
            await self.run_finished(run_id, finish.ended)

    async def task_waiting(self, run_id: str, key: TaskKey, until: datetime | None) -> None:
        task = self.runs[run_id].tasks[key]
        task.status = TaskStatus.WAITING
        task.available_at = until

    async def signal_taken(self, run_id: str, key: TaskKey, name: str) -> Signal | None:
        for sent in self.runs[run_id].signals:
            if sent.signal.name == name and sent.taken_by in (None, key):
                sent.taken_by = key
                return sent.signal
        return None

    async def run_parked(
        self,
        run_id: str,
        until: datetime | None,
        signals: Sequence[str],
        children: Sequence[str] = (),
        fan_outs: Sequence[str] = (),
    ) -> bool:
        """Library use has no other process to resume the run: it waits here, until `until`
        or a signal (`signal`), and answers that the engine should look again."""
        if not self._signal_waiting(run_id, signals):
            wake_up = self._wake_ups.setdefault(run_id, asyncio.Event())
            delay = None if until is None else max(0.0, (until - utcnow()).total_seconds())
            try:
                async with asyncio.timeout(delay):  # not wait_for: it may drop a cancellation
                    await wake_up.wait()
            except TimeoutError:
                pass
            finally:
                self._wake_ups.pop(run_id, None)
        return False

    async def fan_out_shared(self, run_id: str, fan_out: SharedFanOut) -> bool:
        """Library use has no other worker: the engine runs every element itself."""
        return False

    async def fan_out_result(self, run_id: str, step_id: str) -> FanOutResult | None:
        return None

    def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Send the run a signal (library use: the service's is POST /runs/{id}/signals)."""
        run = self.runs.get(run_id)
        if run is None:
            raise UnknownRunError(f"no run has the id {run_id!r}")
        run.signals.append(SentSignal(Signal(name, payload)))
        wake_up = self._wake_ups.get(run_id)
        if wake_up is not None:
            wake_up.set()

    def _signal_waiting(self, run_id: str, names: Sequence[str]) -> bool:
        return any(
            sent.taken_by is None and sent.signal.name in names
            for sent in self.runs[run_id].signals
        )

    async def run_finished(self, run_id: str, ended: RunEnd) -> None:
        run = self.runs[run_id]
        run.status = ended.status
        run.outputs = ended.outputs
        run.error = ended.error
        run.finished_at = ended.at
        _cancel_unfinished(run, ended.at)


def _cancel_unfinished(run: MemoryRun, at: datetime, step_id: str | None = None) -> None:
    """Cancel the run's unfinished tasks (of one step only, when given)."""
    for task in run.tasks.values():
        of_step = step_id is None or task.key.step_id == step_id
        if of_step and task.status not in FINISHED_TASK_STATUSES:
            task.status = TaskStatus.CANCELLED
            task.finished_at = at

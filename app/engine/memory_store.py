"""`InMemoryRunStore`: the run store of library use and of the engine's unit tests.

It keeps the most recent `max_runs` runs (oldest dropped first) so a long-lived process that
runs flows in a loop does not grow without bound.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.runs import FINISHED_TASK_STATUSES, RunError, RunStatus, TaskKey, TaskStatus
from app.engine.store import NewRun, RunEnd


@dataclass
class TaskRecord:
    key: TaskKey
    status: TaskStatus
    attempts: int = 0
    outputs: Mapping[str, Any] | None = None
    error: RunError | None = None
    available_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass
class RunRecord:
    run_id: str
    flow: str
    inputs: Mapping[str, Any]
    status: RunStatus
    started_at: datetime
    tasks: dict[TaskKey, TaskRecord] = field(default_factory=dict)
    outputs: Mapping[str, Any] | None = None
    error: RunError | None = None
    finished_at: datetime | None = None

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
        self.runs: OrderedDict[str, RunRecord] = OrderedDict()

    def get(self, run_id: str) -> RunRecord:
        return self.runs[run_id]

    async def run_started(self, run: NewRun) -> None:
        ready = set(run.ready)
        record = RunRecord(
            run.run_id, run.flow, dict(run.inputs), RunStatus.RUNNING, run.started_at
        )
        for step_id in run.steps:
            key = TaskKey(step_id)
            status = TaskStatus.QUEUED if step_id in ready else TaskStatus.PENDING
            record.tasks[key] = TaskRecord(key, status)
        self.runs[run.run_id] = record
        while len(self.runs) > self.max_runs:
            self.runs.popitem(last=False)

    async def tasks_expanded(self, run_id: str, step_id: str, count: int) -> None:
        tasks = self.runs[run_id].tasks
        status = tasks[TaskKey(step_id)].status
        for index in range(1, count):
            key = TaskKey(step_id, index)
            tasks[key] = TaskRecord(key, status)

    async def task_started(self, run_id: str, key: TaskKey, attempt: int, at: datetime) -> None:
        task = self.runs[run_id].tasks[key]
        task.status = TaskStatus.RUNNING
        task.attempts = attempt
        task.started_at = task.started_at or at

    async def attempt_failed(
        self, run_id: str, key: TaskKey, attempt: int, error: RunError, retry_at: datetime
    ) -> None:
        task = self.runs[run_id].tasks[key]
        task.status = TaskStatus.QUEUED
        task.error = error
        task.available_at = retry_at

    async def task_finished(
        self,
        run_id: str,
        key: TaskKey,
        status: TaskStatus,
        outputs: Mapping[str, Any] | None,
        error: RunError | None,
        at: datetime,
        released: Sequence[str] = (),
        step_finished: bool = True,
        ended: RunEnd | None = None,
    ) -> None:
        run = self.runs[run_id]
        task = run.tasks[key]
        task.status = status
        task.outputs = outputs
        task.error = error
        task.finished_at = at
        for step_id in released:
            run.tasks[TaskKey(step_id)].status = TaskStatus.QUEUED
        if status is TaskStatus.FAILED:  # a failed element ends its fan-out: cancel the rest
            for other in run.tasks.values():
                same_step = other.key.step_id == key.step_id
                if same_step and other.status not in FINISHED_TASK_STATUSES:
                    other.status = TaskStatus.CANCELLED
                    other.finished_at = at
        if ended is not None:
            await self.run_finished(run_id, ended.status, ended.outputs, ended.error, ended.at)

    async def run_finished(
        self,
        run_id: str,
        status: RunStatus,
        outputs: Mapping[str, Any] | None,
        error: RunError | None,
        at: datetime,
    ) -> None:
        run = self.runs[run_id]
        run.status = status
        run.outputs = outputs
        run.error = error
        run.finished_at = at
        for task in run.tasks.values():
            if task.status not in FINISHED_TASK_STATUSES:
                task.status = TaskStatus.CANCELLED
                task.finished_at = at

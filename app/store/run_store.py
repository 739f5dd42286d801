"""`SqlRunStore`: the engine's `RunStore` protocol on the SQL tables.

Each call is one transaction: a finished task, its outputs, the release of the steps it
unblocks and the run's remaining-step count are committed together (DESIGN.md section 5), so a
crash never loses a finished step nor half-records one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.engine.store import NewRun, RunStatus, TaskKey, TaskStatus
from app.errors import RunError
from app.store.models import FlowRunRow, TaskRunRow
from app.store.runs import UNFINISHED_TASK_STATUSES, cancel_unfinished_tasks, error_value
from app.store.types import to_json_value


class SqlRunStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def run_started(self, run: NewRun) -> None:
        """The run row exists (the service created it); its tasks are (re)created here."""
        ready = set(run.ready)
        async with self.sessions.begin() as session:
            await session.execute(
                update(FlowRunRow)
                .where(FlowRunRow.id == run.run_id)
                .values(
                    status=RunStatus.RUNNING.value,
                    started_at=run.started_at,
                    finished_at=None,
                    outputs=None,
                    error=None,
                    remaining_steps=len(run.steps),
                )
            )
            if run.steps:
                # A retried run replaces the tasks of the steps it runs again.
                await session.execute(
                    delete(TaskRunRow).where(
                        TaskRunRow.run_id == run.run_id, TaskRunRow.step_id.in_(run.steps)
                    )
                )
                await session.execute(
                    insert(TaskRunRow),
                    [
                        _new_task(run.run_id, step_id, 0, step_id in ready, run.started_at)
                        for step_id in run.steps
                    ],
                )

    async def tasks_expanded(self, run_id: str, step_id: str, count: int) -> None:
        if count <= 1:
            return
        async with self.sessions.begin() as session:
            await session.execute(
                insert(TaskRunRow),
                [_new_task(run_id, step_id, index, True, None) for index in range(1, count)],
            )

    async def task_started(self, run_id: str, key: TaskKey, attempt: int, at: datetime) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                _task(run_id, key).values(status=TaskStatus.RUNNING.value, attempts=attempt)
            )
            await session.execute(
                _task(run_id, key).where(TaskRunRow.started_at.is_(None)).values(started_at=at)
            )

    async def attempt_failed(
        self, run_id: str, key: TaskKey, attempt: int, error: RunError, retry_at: datetime
    ) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                _task(run_id, key).values(
                    status=TaskStatus.QUEUED.value, error=error.as_dict(), available_at=retry_at
                )
            )

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
    ) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                _task(run_id, key).values(
                    status=status.value,
                    outputs=to_json_value(outputs) if outputs is not None else None,
                    error=error_value(error),
                    finished_at=at,
                )
            )
            if status is TaskStatus.FAILED:  # a failed element ends its fan-out
                await session.execute(
                    update(TaskRunRow)
                    .where(
                        TaskRunRow.run_id == run_id,
                        TaskRunRow.step_id == key.step_id,
                        TaskRunRow.status.in_(UNFINISHED_TASK_STATUSES),
                    )
                    .values(status=TaskStatus.CANCELLED.value, finished_at=at)
                )
            if released:
                await session.execute(
                    update(TaskRunRow)
                    .where(
                        TaskRunRow.run_id == run_id,
                        TaskRunRow.step_id.in_(released),
                        TaskRunRow.task_index == 0,
                        TaskRunRow.status == TaskStatus.PENDING.value,
                    )
                    .values(status=TaskStatus.QUEUED.value, available_at=at)
                )
            if step_finished:
                await session.execute(
                    update(FlowRunRow)
                    .where(FlowRunRow.id == run_id)
                    .values(remaining_steps=FlowRunRow.remaining_steps - 1)
                )

    async def run_finished(
        self,
        run_id: str,
        status: RunStatus,
        outputs: Mapping[str, Any] | None,
        error: RunError | None,
        at: datetime,
    ) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(FlowRunRow)
                .where(FlowRunRow.id == run_id)
                .values(
                    status=status.value,
                    outputs=to_json_value(outputs) if outputs is not None else None,
                    error=error_value(error),
                    finished_at=at,
                    remaining_steps=0,
                )
            )
            await cancel_unfinished_tasks(session, run_id, at)


def _task(run_id: str, key: TaskKey) -> Any:
    return update(TaskRunRow).where(
        TaskRunRow.run_id == run_id,
        TaskRunRow.step_id == key.step_id,
        TaskRunRow.task_index == key.task_index,
    )


def _new_task(
    run_id: str, step_id: str, index: int, ready: bool, at: datetime | None
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step_id": step_id,
        "task_index": index,
        "status": (TaskStatus.QUEUED if ready else TaskStatus.PENDING).value,
        "attempts": 0,
        "available_at": at if ready else None,
    }

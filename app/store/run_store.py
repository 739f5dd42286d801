"""`SqlRunStore`: the engine's `RunStore` protocol on the SQL tables.

Each call is one transaction: a finished task, its outputs, the release of the steps it
unblocks and the run's remaining-step count are committed together (DESIGN.md section 5), and
the task that ends a run ends it in the same transaction. A crash never loses a finished step
nor half-records one.

Start marks (`task_started`) are written behind: most steps finish within milliseconds, and
their start is then recorded with their finish, in one commit instead of two. A step still
running after `START_MARK_DELAY` gets its own "running" commit, so long steps show up: one
background writer per store writes the marks that came due, every `START_MARK_DELAY`.
Losing an unwritten start mark in a crash loses nothing: the task is simply not running.

Every write is made by the holder of the run's lease (`owner`, this process's worker id): each
transaction first locks the run and checks the lease (`queue.hold`), and raises
`LeaseLostError` without writing when another worker took the run over or it ended elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.background import stop_task
from app.engine.clock import utcnow
from app.engine.store import NewRun, RunEnd, RunStatus, TaskKey, TaskStatus
from app.errors import LeaseLostError, RunError
from app.store import definitions, notifications, queue, runs
from app.store.models import FlowRunRow, TaskRunRow
from app.store.records import Creation, NewRunRow
from app.store.runs import UNFINISHED_TASK_STATUSES, cancel_unfinished_tasks, error_value
from app.store.types import to_json_value

logger = logging.getLogger(__name__)

START_MARK_DELAY = 0.2  # seconds a task may run before its start gets a commit of its own

StartMark = tuple[int, datetime]  # (attempt, started at)


class SqlRunStore:
    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        self.engine = engine
        self.owner = owner
        self._start_marks: dict[tuple[str, TaskKey], StartMark] = {}
        self._mark_writer: asyncio.Task[None] | None = None

    # Starting runs: the service's calls, on the store's fastest path to the database.

    async def locate(self, name: str, number: int | None) -> tuple[int, int]:
        """(id, version) of the flow's latest version, or of version `number`."""
        async with AsyncSession(self.engine) as session:
            return await definitions.locate(session, name, number)

    async def create_run(self, run: NewRunRow) -> Creation:
        """Create the run (and notify the workers of a queued one), unless its idempotency
        key is taken or its version is stale (see `Creation`)."""
        try:
            async with AsyncSession(self.engine) as session, session.begin():
                current = await definitions.is_current(
                    session, run.definition_id, latest_only=run.latest_only
                )
                if not current:
                    return Creation.STALE
                await runs.create(session, run)
                if run.status is RunStatus.QUEUED:
                    await notifications.notify(session, notifications.RUNS_QUEUED)
        except IntegrityError:
            if run.idempotency_key is None:
                raise
            return Creation.KEY_TAKEN
        return Creation.CREATED

    # The engine's transitions.

    async def run_started(self, run: NewRun) -> None:
        """The run row and a pending task per step exist (the service created them)."""
        async with self._holding(run.run_id) as connection:
            await connection.execute(
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
            if not run.fresh and run.steps:  # a resumed run replaces the tasks it reruns
                await connection.execute(
                    delete(TaskRunRow).where(
                        TaskRunRow.run_id == run.run_id, TaskRunRow.step_id.in_(run.steps)
                    )
                )
                await connection.execute(
                    insert(TaskRunRow),
                    [_new_task(run.run_id, step_id, 0, False, None) for step_id in run.steps],
                )
            if run.ready:
                await connection.execute(
                    update(TaskRunRow)
                    .where(
                        TaskRunRow.run_id == run.run_id,
                        TaskRunRow.step_id.in_(run.ready),
                        TaskRunRow.task_index == 0,
                    )
                    .values(status=TaskStatus.QUEUED.value, available_at=run.started_at)
                )

    async def tasks_expanded(self, run_id: str, step_id: str, count: int) -> None:
        if count <= 1:
            return
        async with self._holding(run_id) as connection:
            await connection.execute(
                insert(TaskRunRow),
                [_new_task(run_id, step_id, index, True, None) for index in range(1, count)],
            )

    async def task_started(self, run_id: str, key: TaskKey, attempt: int, at: datetime) -> None:
        self._start_marks[run_id, key] = (attempt, at)
        if self._mark_writer is None:
            self._mark_writer = asyncio.create_task(self._write_due_marks(), name="start-marks")

    async def attempt_failed(
        self, run_id: str, key: TaskKey, attempt: int, error: RunError, retry_at: datetime
    ) -> None:
        async with self._holding(run_id) as connection:
            await connection.execute(
                _task(run_id, key).values(
                    status=TaskStatus.QUEUED.value,
                    error=error.as_dict(),
                    available_at=retry_at,
                    **self._start_values(run_id, key),
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
        ended: RunEnd | None = None,
    ) -> None:
        async with self._holding(run_id) as connection:
            await connection.execute(
                _task(run_id, key).values(
                    status=status.value,
                    outputs=to_json_value(outputs) if outputs is not None else None,
                    error=error_value(error),
                    finished_at=at,
                    lease_owner=self.owner,
                    **self._start_values(run_id, key),
                )
            )
            if status is TaskStatus.FAILED:  # a failed element ends its fan-out
                await cancel_unfinished_tasks(connection, run_id, at, step_id=key.step_id)
            if released:
                await connection.execute(
                    update(TaskRunRow)
                    .where(
                        TaskRunRow.run_id == run_id,
                        TaskRunRow.step_id.in_(released),
                        TaskRunRow.task_index == 0,
                        TaskRunRow.status == TaskStatus.PENDING.value,
                    )
                    .values(status=TaskStatus.QUEUED.value, available_at=at)
                )
            if ended is not None:
                await _end_run(connection, run_id, ended)
            elif step_finished:
                await connection.execute(
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
        async with self._holding(run_id) as connection:
            await _end_run(connection, run_id, RunEnd(status, outputs, error, at))

    async def aclose(self) -> None:
        """Stop writing start marks (their tasks are not running any more)."""
        await stop_task(self._mark_writer)
        self._start_marks.clear()

    @contextlib.asynccontextmanager
    async def _holding(self, run_id: str) -> AsyncIterator[AsyncConnection]:
        """A transaction that holds the run's lease (else `LeaseLostError`, nothing written)."""
        async with self.engine.begin() as connection:
            await queue.hold(connection, run_id, self.owner, utcnow())
            yield connection

    def _start_values(self, run_id: str, key: TaskKey) -> dict[str, Any]:
        """The unwritten start mark of this task, folded into the caller's update."""
        mark = self._start_marks.pop((run_id, key), None)
        if mark is None:
            return {}
        attempt, at = mark
        return {"attempts": attempt, "started_at": func.coalesce(TaskRunRow.started_at, at)}

    async def _write_due_marks(self) -> None:
        """While tasks run, write the start marks of those running longer than the delay."""
        try:
            while self._start_marks:
                await asyncio.sleep(START_MARK_DELAY)
                due_before = utcnow() - timedelta(seconds=START_MARK_DELAY)
                due = [key for key, (_, at) in self._start_marks.items() if at <= due_before]
                await self._write_starts(due)
        finally:
            self._mark_writer = None

    async def _write_starts(self, due: list[tuple[str, TaskKey]]) -> None:
        for run_id, key in due:  # one at a time: one writer, one pooled connection
            await self._write_start_mark(run_id, key)

    async def _write_start_mark(self, run_id: str, key: TaskKey) -> None:
        """Best effort: when the store fails now, the mark is lost, not the run."""
        try:
            await self._write_start(run_id, key)
        except LeaseLostError:  # the run's new owner writes its own marks
            pass
        except Exception as error:
            logger.warning("run %s: writing the start of %s failed (%r)", run_id, key, error)

    async def _write_start(self, run_id: str, key: TaskKey) -> None:
        values = self._start_values(run_id, key)
        if not values:  # the task already finished (or failed) and took its mark along
            return
        running = case(
            (TaskRunRow.status.in_(UNFINISHED_TASK_STATUSES), TaskStatus.RUNNING.value),
            else_=TaskRunRow.status,
        )
        async with self._holding(run_id) as connection:
            await connection.execute(
                _task(run_id, key).values(status=running, lease_owner=self.owner, **values)
            )


async def _end_run(connection: AsyncConnection, run_id: str, ended: RunEnd) -> None:
    """End a running run; one already ended elsewhere (cancelled from another process) keeps
    its end."""
    await connection.execute(
        update(FlowRunRow)
        .where(FlowRunRow.id == run_id, FlowRunRow.status == RunStatus.RUNNING.value)
        .values(
            status=ended.status.value,
            outputs=to_json_value(ended.outputs) if ended.outputs is not None else None,
            error=error_value(ended.error),
            finished_at=ended.at,
            remaining_steps=0,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    await cancel_unfinished_tasks(connection, run_id, ended.at)


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

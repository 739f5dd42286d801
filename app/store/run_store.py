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

from sqlalchemy import Integer, bindparam, case, delete, func, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.background import stop_task
from app.domain.clock import utcnow
from app.domain.records import Creation, NewRunRow
from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus
from app.engine.store import NewRun, RunEnd
from app.errors import LeaseLostError
from app.store import definitions, notifications, queue, runs
from app.store.models import RUNS, TASKS
from app.store.runs import UNFINISHED_TASK_VALUES, cancel_unfinished_tasks, error_value
from app.store.types import UTCDateTime

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
                _START_RUN,
                {"run": run.run_id, "at": run.started_at, "remaining": len(run.steps)},
            )
            if not run.fresh and run.steps:  # a resumed run replaces the tasks it reruns
                await connection.execute(
                    delete(TASKS).where(
                        TASKS.c.run_id == run.run_id, TASKS.c.step_id.in_(run.steps)
                    )
                )
                await connection.execute(
                    insert(TASKS),
                    [_new_task(run.run_id, step_id, 0, False, None) for step_id in run.steps],
                )
            if run.ready:
                await connection.execute(
                    _QUEUE_STEPS,
                    {"run": run.run_id, "steps": list(run.ready), "at": run.started_at},
                )

    async def tasks_expanded(self, run_id: str, step_id: str, count: int) -> None:
        if count <= 1:
            return
        async with self._holding(run_id) as connection:
            await connection.execute(
                insert(TASKS),
                [_new_task(run_id, step_id, index, True, None) for index in range(1, count)],
            )

    async def task_started(self, run_id: str, key: TaskKey, attempt: int, at: datetime) -> None:
        self._start_marks[run_id, key] = (attempt, at)
        if self._mark_writer is None:
            self._mark_writer = asyncio.create_task(self._write_due_marks(), name="start-marks")

    async def attempt_failed(
        self, run_id: str, key: TaskKey, attempt: int, error: RunError, retry_at: datetime
    ) -> None:
        retry = {**self._task_values(run_id, key), "failure": error.as_dict(), "at": retry_at}
        async with self._holding(run_id) as connection:
            await connection.execute(_RETRY_TASK, retry)

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
        finished = {
            **self._task_values(run_id, key),
            "state": status.value,
            "result": outputs,  # plain JSON data: the engine checked it (app.storable)
            "failure": error_value(error),
            "at": at,
            "owner": self.owner,
        }
        async with self._holding(run_id) as connection:
            await connection.execute(_FINISH_TASK, finished)
            if status is TaskStatus.FAILED:  # a failed element ends its fan-out
                await cancel_unfinished_tasks(connection, run_id, at, step_id=key.step_id)
            if released:
                await connection.execute(
                    _RELEASE_STEPS, {"run": run_id, "steps": list(released), "at": at}
                )
            if ended is not None:
                await _end_run(connection, run_id, ended)
            elif step_finished:
                await connection.execute(_STEP_FINISHED, {"run": run_id})

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

    def _task_values(self, run_id: str, key: TaskKey) -> dict[str, Any]:
        """The parameters that name the task in an update, with its start mark when unwritten
        (`_START_MARK`): the update takes the mark along."""
        attempt, started = self._start_marks.pop((run_id, key), (None, None))
        return {
            "run": run_id,
            "step": key.step_id,
            "index": key.task_index,
            "attempt": attempt,
            "started": started,
        }

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
        if (run_id, key) not in self._start_marks:  # the task finished and took its mark along
            return
        started = {**self._task_values(run_id, key), "owner": self.owner}
        async with self._holding(run_id) as connection:
            await connection.execute(_MARK_STARTED, started)


async def _end_run(connection: AsyncConnection, run_id: str, ended: RunEnd) -> None:
    """End a running run; one already ended elsewhere (cancelled from another process) keeps
    its end."""
    await connection.execute(
        _END_RUN,
        {
            "run": run_id,
            "state": ended.status.value,
            "result": ended.outputs,
            "failure": error_value(ended.error),
            "at": ended.at,
        },
    )
    await cancel_unfinished_tasks(connection, run_id, ended.at)


# The statements of the hot path, built once: building and keying a statement per call cost
# more of the main thread than SQLite's execution of it. An update reserves its columns' names,
# so the parameters have names of their own.
_START_RUN = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("run"))
    .values(
        status=RunStatus.RUNNING.value,
        started_at=bindparam("at"),
        finished_at=None,
        outputs=None,
        error=None,
        remaining_steps=bindparam("remaining"),
    )
)
_QUEUE_STEPS = (
    update(TASKS)
    .where(
        TASKS.c.run_id == bindparam("run"),
        TASKS.c.step_id.in_(bindparam("steps", expanding=True)),
        TASKS.c.task_index == 0,
    )
    .values(status=TaskStatus.QUEUED.value, available_at=bindparam("at"))
)
_RELEASE_STEPS = _QUEUE_STEPS.where(TASKS.c.status == TaskStatus.PENDING.value)

_UPDATE_TASK = update(TASKS).where(
    TASKS.c.run_id == bindparam("run"),
    TASKS.c.step_id == bindparam("step"),
    TASKS.c.task_index == bindparam("index"),
)
# A task's start mark, written with whichever update comes first; null parameters keep the
# columns (`_task_values`).
_START_MARK = {
    "attempts": func.coalesce(bindparam("attempt", type_=Integer), TASKS.c.attempts),
    "started_at": func.coalesce(TASKS.c.started_at, bindparam("started", type_=UTCDateTime)),
}
_MARK_STARTED = _UPDATE_TASK.values(
    status=case(
        (TASKS.c.status.in_(UNFINISHED_TASK_VALUES), TaskStatus.RUNNING.value),
        else_=TASKS.c.status,
    ),
    lease_owner=bindparam("owner"),
    **_START_MARK,
)
_RETRY_TASK = _UPDATE_TASK.values(
    status=TaskStatus.QUEUED.value,
    error=bindparam("failure"),
    available_at=bindparam("at"),
    **_START_MARK,
)
_FINISH_TASK = _UPDATE_TASK.values(
    status=bindparam("state"),
    outputs=bindparam("result"),
    error=bindparam("failure"),
    finished_at=bindparam("at"),
    lease_owner=bindparam("owner"),
    **_START_MARK,
)
_STEP_FINISHED = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("run"))
    .values(remaining_steps=RUNS.c.remaining_steps - 1)
)
_END_RUN = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("run"), RUNS.c.status == RunStatus.RUNNING.value)
    .values(
        status=bindparam("state"),
        outputs=bindparam("result"),
        error=bindparam("failure"),
        finished_at=bindparam("at"),
        remaining_steps=0,
        lease_owner=None,
        lease_expires_at=None,
    )
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

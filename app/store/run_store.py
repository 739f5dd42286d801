"""`SqlRunStore`: the one store of runs, on SQLite, PostgreSQL and MariaDB.

It implements both ports: the engine's `RunStore` (the transitions of a run, as the engine
reports them) and the services' `RunRepository` (creating, reading, claiming, leasing and
ending runs). Every statement is in `queries/`; on PostgreSQL the transitions every step goes
through take the one-statement path with group commit (`postgres.PostgresPath`), chosen here
at construction; the rest take the portable statements.

Each call is one transaction: a finished task, its outputs, the release of the steps it
unblocks and the run's remaining-step count are committed together (DESIGN.md section 5), and
the task that ends a run ends it in the same transaction. A crash never loses a finished step
nor half-records one.

Every engine write is made by the holder of the run's lease (`owner`, this process's worker
id): each transaction first locks the run and checks the lease, and raises `LeaseLostError`
without writing when another worker took the run over or it ended elsewhere. A store that
fails for a passing reason (a lost connection, a serialization failure) raises
`StoreUnavailableError`: no driver error leaves the store for that.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.domain.clock import utcnow
from app.domain.formats import Format
from app.domain.records import AttemptLog, Claim, Creation, NewRunRow, RunRecord, StepRecord
from app.domain.runs import RETRYABLE_RUN_STATUSES, RunError, RunStatus, TaskKey, TaskStatus
from app.engine.store import NewRun, RunEnd, StoredRun, TaskFinish
from app.errors import UnknownRunError
from app.store import notifications
from app.store.database import passing_failures_translated, session_factory
from app.store.models import TASKS
from app.store.postgres import PostgresPath
from app.store.queries import queue, reads, runs, secrets, tasks, versions
from app.store.start_marks import StartMarks


class SqlRunStore:
    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        """`owner`: this process's worker id, the holder of the leases of the runs it runs."""
        self.engine = engine
        self.owner = owner
        self._sessions = session_factory(engine)
        self.fast = PostgresPath(engine, owner) if engine.dialect.name == "postgresql" else None
        self._marks = StartMarks(self._write_mark, together=self.fast is not None)

    # Starting runs.

    async def locate(self, name: str, number: int | None) -> tuple[int, int]:
        """(id, version) of the flow's latest version, or of version `number`;
        UnknownFlowError / UnknownVersionError."""
        if self.fast is not None:
            with passing_failures_translated():
                found = await self.fast.locate(name, number)
            if found is not None:
                return found
        async with self._read() as session:
            return await versions.locate(session, name, number)

    async def source_of(self, definition_id: int) -> tuple[str, Format]:
        async with self._read() as session:
            return await versions.source_of(session, definition_id)

    async def create(self, run: NewRunRow) -> Creation:
        """Create the run (and notify the workers of a queued one), unless its idempotency
        key is taken or its version is stale (see `Creation`)."""
        if self.fast is not None and run.status is not RunStatus.QUEUED:
            with passing_failures_translated():
                return await self.fast.create(run)
        try:
            async with self._write() as session:
                current = await versions.is_current(
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

    async def id_for_key(
        self, idempotency_key: str, flow_name: str, created_by: str | None
    ) -> str | None:
        async with self._read() as session:
            return await runs.id_for_key(session, idempotency_key, flow_name, created_by)

    # Reading runs.

    async def get(self, run_id: str, *, with_steps: bool = True) -> RunRecord | None:
        async with self._read() as session:
            return await reads.get(session, run_id, with_steps=with_steps)

    async def task(self, run_id: str, step_id: str, task_index: int) -> StepRecord | None:
        async with self._read() as session:
            return await reads.task(session, run_id, step_id, task_index)

    async def task_logs(
        self, run_id: str, step_id: str, task_index: int, attempt: int | None
    ) -> list[AttemptLog]:
        async with self._read() as session:
            return await reads.task_logs(session, run_id, step_id, task_index, attempt)

    async def page(
        self,
        *,
        flow: str | None,
        status: RunStatus | None,
        limit: int,
        after: tuple[datetime, str] | None,
        viewer: str | None,
        value_limit: int | None = None,
    ) -> list[RunRecord]:
        async with self._read() as session:
            return await reads.page(
                session,
                flow=flow,
                status=status,
                limit=limit,
                after=after,
                viewer=viewer,
                value_limit=value_limit,
            )

    async def cursor_secret(self) -> bytes | None:
        """The key that signs run-list cursors, as the migrations keep it."""
        async with self._read() as session:
            stored = await secrets.get(session, secrets.CURSOR_KEY)
        return None if stored is None else stored.encode()

    # The queue and leases.

    async def claim(self, now: datetime, lease_seconds: float, limit: int) -> list[Claim]:
        async with self._write() as session:
            return await queue.claim(session, self.owner, now, lease_seconds, limit)

    async def renew(
        self, run_ids: Collection[str], now: datetime, lease_seconds: float
    ) -> set[str]:
        async with self._write() as session:
            return await queue.renew(session, self.owner, run_ids, now, lease_seconds)

    async def release(self, run_ids: Sequence[str], now: datetime) -> None:
        async with self._write() as session:
            await queue.release(session, self.owner, run_ids, now)

    async def expire_all(self, now: datetime) -> int:
        async with self._write() as session:
            return await queue.expire_all(session, now)

    # Changing runs.

    async def end(
        self, run_id: str, status: RunStatus, at: datetime, error: RunError | None = None
    ) -> bool:
        """End a queued or running run wherever it runs (its worker is notified of a
        cancellation); False when it was not active."""
        async with self._write() as session:
            ended = await runs.end(session, run_id, status, at, error=error)
            if ended and status is RunStatus.CANCELLED:
                await notifications.notify(session, notifications.RUN_CANCELLED, run_id)
        return ended

    async def restart(
        self, run_id: str, now: datetime, lease_seconds: float, remaining_steps: int
    ) -> Claim | None:
        """A failed or cancelled run running again under this worker's lease, as a claim of a
        run taken over, with `remaining_steps` to run; None when it was neither failed nor
        cancelled. The count is set here, with the status, and not left to the resumed run's
        start: until then the run would read as running with nothing left to do."""
        async with self._write() as session:
            changed = await runs.change_status(
                session,
                run_id,
                RunStatus.RUNNING,
                only_from=RETRYABLE_RUN_STATUSES,
                finished_at=None,
                error=None,
                remaining_steps=remaining_steps,
                **queue.lease_values(self.owner, now, lease_seconds),
            )
            launch = await runs.launch_of(session, run_id) if changed else None
        if launch is None:
            return None
        definition_id, traceparent = launch
        return Claim(run_id, definition_id, None, taken_over=True, traceparent=traceparent)

    # The engine's transitions.

    async def load(self, run_id: str) -> StoredRun:
        record = await self.get(run_id)
        if record is None:
            raise UnknownRunError(f"no run has the id {run_id!r}")
        return StoredRun(run_id, record.inputs, record.steps)

    async def run_started(self, run: NewRun) -> None:
        """The run row and a pending task per step exist (`create` made them)."""
        if self.fast is not None and not run.resumed:
            with passing_failures_translated():
                await self.fast.start_new_run(run)
            return
        async with self._holding(run.run_id) as connection:
            started = {"run": run.run_id, "at": run.started_at, "remaining": len(run.steps)}
            await connection.execute(tasks.START_RUN, started)
            if run.resumed and run.steps:  # it replaces the tasks it runs again
                await connection.execute(
                    delete(TASKS).where(
                        TASKS.c.run_id == run.run_id, TASKS.c.step_id.in_(run.steps)
                    )
                )
                await connection.execute(
                    insert(TASKS),
                    [tasks.new_task(run.run_id, step_id, 0, False) for step_id in run.steps],
                )
            if run.ready:
                queued = {"run": run.run_id, "steps": list(run.ready), "at": run.started_at}
                await connection.execute(tasks.QUEUE_STEPS, queued)

    async def tasks_expanded(self, run_id: str, step_id: str, count: int) -> None:
        if count <= 1:
            return
        if self.fast is not None:
            with passing_failures_translated():
                await self.fast.expand(run_id, step_id, count)
            return
        async with self._holding(run_id) as connection:
            await connection.execute(
                insert(TASKS),
                [tasks.new_task(run_id, step_id, index, True) for index in range(1, count)],
            )

    async def task_started(self, run_id: str, key: TaskKey, attempt: int, at: datetime) -> None:
        self._marks.add(run_id, key, (attempt, at))

    async def attempt_failed(
        self,
        run_id: str,
        key: TaskKey,
        attempt: int,
        error: RunError,
        retry_at: datetime,
        log: AttemptLog | None = None,
    ) -> None:
        mark = self._marks.take(run_id, key)
        retry = tasks.task_values(run_id, key.step_id, key.task_index, mark)
        retry.update(failure=error.as_dict(), at=retry_at)
        async with self._holding(run_id) as connection:
            await connection.execute(tasks.RETRY_TASK, retry)
            if log is not None:
                logged = tasks.log_values(run_id, key, log, utcnow())
                await connection.execute(tasks.ADD_LOG, logged)

    async def task_finished(self, run_id: str, finish: TaskFinish) -> None:
        mark = self._marks.take(run_id, finish.key)
        if self.fast is not None:
            with passing_failures_translated():
                await self.fast.finish(run_id, finish, mark)
            return
        finished = tasks.task_values(run_id, finish.key.step_id, finish.key.task_index, mark)
        finished.update(
            state=finish.status.value,
            result=finish.outputs,  # plain JSON data: the engine checked it (app.domain.storable)
            failure=runs.error_value(finish.error),
            at=finish.at,
            owner=self.owner,
        )
        async with self._holding(run_id) as connection:
            await connection.execute(tasks.FINISH_TASK, finished)
            if finish.log is not None:
                logged = tasks.log_values(run_id, finish.key, finish.log, finish.at)
                await connection.execute(tasks.ADD_LOG, logged)
            if finish.status is TaskStatus.FAILED:  # a failed element ends its fan-out
                step_id = finish.key.step_id
                await runs.cancel_unfinished_tasks(connection, run_id, finish.at, step_id)
            if finish.released:
                released = {"run": run_id, "steps": list(finish.released), "at": finish.at}
                await connection.execute(tasks.RELEASE_STEPS, released)
            if finish.ended is not None:
                await _end(connection, run_id, finish.ended)
            elif finish.step_finished:
                await connection.execute(tasks.STEP_FINISHED, {"run": run_id})

    async def run_finished(self, run_id: str, ended: RunEnd) -> None:
        async with self._holding(run_id) as connection:
            await _end(connection, run_id, ended)

    async def aclose(self) -> None:
        """Stop writing start marks (their tasks are not running any more), then let the
        writes already queued commit."""
        await self._marks.aclose()
        if self.fast is not None:
            await self.fast.aclose()

    async def _write_mark(self, run_id: str, key: TaskKey, mark: tuple[int, datetime]) -> None:
        if self.fast is not None:
            with passing_failures_translated():
                await self.fast.mark_started(run_id, key, mark)
            return
        started = tasks.task_values(run_id, key.step_id, key.task_index, mark)
        started["owner"] = self.owner
        async with self._holding(run_id) as connection:
            await connection.execute(tasks.MARK_STARTED, started)

    # Transactions.

    @contextlib.asynccontextmanager
    async def _holding(self, run_id: str) -> AsyncIterator[AsyncConnection]:
        """A transaction that holds the run's lease (else `LeaseLostError`, nothing written)."""
        with passing_failures_translated():
            async with self.engine.begin() as connection:
                await queue.hold(connection, run_id, self.owner, utcnow())
                yield connection

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        with passing_failures_translated():
            async with self._sessions() as session:
                yield session

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        with passing_failures_translated():
            async with self._sessions.begin() as session:
                yield session


async def _end(connection: AsyncConnection, run_id: str, ended: RunEnd) -> None:
    await runs.end(
        connection, run_id, ended.status, ended.at, outputs=ended.outputs, error=ended.error
    )

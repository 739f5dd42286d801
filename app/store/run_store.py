"""`SqlRunStore`: the one store of runs, on SQLite, PostgreSQL and MariaDB.

It implements both ports: the engine's `RunStore` (the transitions of a run, as the engine
reports them) and the services' `RunRepository` (creating, reading, claiming, leasing and
ending runs). Every statement is in `queries/`; the transitions every step goes through take
a fast path with group commit, chosen here at construction: on PostgreSQL one statement each
(`postgres.PostgresPath`), on SQLite a batch run whole on the connection's thread
(`sqlite.SqlitePath`); the rest take the portable statements.

Each call is one transaction: a finished task, its outputs, the release of the steps it
unblocks and the run's remaining-step count are committed together (DESIGN.md section 5), and
the task that ends a run ends it in the same transaction. A crash never loses a finished step
nor half-records one.

Every engine write is made by the holder of the run's lease (`owner`, this process's worker
id): each transaction first locks the run and checks the lease, and raises `LeaseLostError`
without writing when another worker took the run over or it ended elsewhere. A store that
fails for a passing reason (a lost connection, a serialization failure) raises
`StoreUnavailableError`: no driver error leaves the store for that.

Every transition writes its events in its own transaction (`queries/events.py`). Watchers
hear of them: on PostgreSQL by a notification sent with the commit (from any process), on
SQLite (one process) and MariaDB from this process by `on_events`, after the commit;
MariaDB's other processes poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.domain.clock import utcnow
from app.domain.elements import ElementFinish, ElementWork, FanOutResult, SharedFanOut
from app.domain.formats import Format
from app.domain.records import (
    AttemptLog,
    Claim,
    Creation,
    Lineage,
    NewRunRow,
    RunEvent,
    RunRecord,
    Sending,
    StepRecord,
)
from app.domain.runs import (
    ACTIVE_RUN_STATUSES,
    RETRYABLE_RUN_STATUSES,
    RunError,
    RunStatus,
    TaskKey,
    TaskStatus,
)
from app.engine.store import NewRun, RunEnd, Signal, StoredRun, TaskFinish
from app.errors import UnknownRunError
from app.store import notifications
from app.store.database import passing_failures_translated, session_factory
from app.store.models import TASKS
from app.store.postgres import PostgresPath
from app.store.queries import (
    elements,
    events,
    queue,
    reads,
    runs,
    secrets,
    tasks,
    versions,
    waits,
)
from app.store.sqlite import SqlitePath
from app.store.start_marks import StartMarks


class SqlRunStore:
    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        """`owner`: this process's worker id, the holder of the leases of the runs it runs."""
        self.engine = engine
        self.owner = owner
        self._sessions = session_factory(engine)
        self.notifies = engine.dialect.name == "postgresql"
        self.fast: PostgresPath | SqlitePath | None = None
        if self.notifies:
            self.fast = PostgresPath(engine, owner)
        elif engine.dialect.name == "sqlite":
            self.fast = SqlitePath(engine, owner, self._written)
        self._marks = StartMarks(self._write_mark, together=self.fast is not None)
        self._events_written: Callable[[str], None] = _nobody_watches

    def on_events(self, callback: Callable[[str], None]) -> None:
        """Call `callback(run_id)` after this process commits events of a run, where the
        store sends no notification (SQLite, MariaDB)."""
        self._events_written = callback

    # Starting runs.

    async def locate(self, name: str, number: int | None) -> tuple[int, int]:
        """(id, version) of the flow's latest version, or of version `number`;
        UnknownFlowError / UnknownVersionError."""
        if isinstance(self.fast, PostgresPath):
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
        # A fork copies its kept tasks, and a child run records its parent: the portable
        # statements, on every database.
        if self.fast is not None and not run.forked_from and run.parent_run_id is None:
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

    def create_later(self, run: NewRunRow) -> Awaitable[Creation] | None:
        """`create`, in the commit of the run's first progress (the fast paths queue it)."""
        plain = not run.forked_from and run.parent_run_id is None and run.idempotency_key is None
        if self.fast is None or not plain or run.lease_owner is None:
            return None
        return _creation(self.fast.create_later(run))

    async def create_all(self, batch: Sequence[NewRunRow]) -> Creation:
        """Create queued runs of one version in one transaction (and notify the workers
        once): all of them, or none when the version is stale."""
        async with self._write() as session:
            first = batch[0]
            current = await versions.is_current(
                session, first.definition_id, latest_only=first.latest_only
            )
            if not current:
                return Creation.STALE
            await runs.create_all(session, batch)
            await notifications.notify(session, notifications.RUNS_QUEUED)
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
        parent: str | None = None,
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
                parent=parent,
            )

    async def lineage(self, run_id: str) -> Lineage | None:
        async with self._read() as session:
            return await runs.lineage(session, run_id)

    async def cursor_secret(self) -> bytes | None:
        """The key that signs run-list cursors, as the migrations keep it."""
        async with self._read() as session:
            stored = await secrets.get(session, secrets.CURSOR_KEY)
        return None if stored is None else stored.encode()

    # Events.

    async def watch(self, run_id: str) -> tuple[RunRecord, int] | None:
        """The run with every task, and the id of its latest event, which the record
        includes; from now on the run's transitions write their events. Read holding the
        run's row: no transition of it commits in between."""
        async with self._write() as session:
            await events.watch(session, run_id)
            last = await events.last_id(session, run_id)
            record = await reads.get(session, run_id)
        return None if record is None else (record, last)

    async def events_after(
        self, run_id: str, after: int, limit: int, value_limit: int
    ) -> list[RunEvent]:
        """The run's events after the id `after`, oldest first, at most `limit`; outputs
        larger than `value_limit` (as the store keeps their JSON text) left in the store."""
        async with self._read() as session:
            return await events.after(session, run_id, after, limit, value_limit)

    # The queue and leases.

    async def claim(self, now: datetime, lease_seconds: float, limit: int) -> list[Claim]:
        claims: list[Claim] = []
        if isinstance(self.fast, PostgresPath):
            with passing_failures_translated():
                claims, keyed_met = await self.fast.claim(now, lease_seconds, limit)
            if not keyed_met or len(claims) == limit:
                return claims
        async with self._write() as session:
            more, started = await queue.claim(
                session, self.owner, now, lease_seconds, limit - len(claims)
            )
            await self._notify_watchers(session, started)
        self._written(started)
        return claims + more

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
            await elements.expire_all(session, now)
            return await queue.expire_all(session, now)

    # Changing runs.

    async def end(
        self, run_id: str, status: RunStatus, at: datetime, error: RunError | None = None
    ) -> bool:
        """End a queued or running run wherever it runs (its worker is notified of a
        cancellation); False when it was not active. What this process wrote of the run
        lands first (its start, say, is not applied after its end)."""
        if self.fast is not None:
            await self.fast.landed(run_id)
        async with self._write() as session:
            recorder = await events.locked(session, run_id)
            ended = await runs.end(recorder, run_id, status, at, error=error)
            if ended and status is RunStatus.CANCELLED:
                await notifications.notify(session, notifications.RUN_CANCELLED, run_id)
            watched = ended and recorder.watched
            if watched:
                await notifications.notify(session, notifications.RUN_EVENTS, run_id)
        if watched:
            self._written([run_id])
        return ended

    async def send_signal(
        self, run_id: str, name: str, payload: Any, at: datetime, max_signals: int
    ) -> Sending:
        """Keep a signal for an active run (at most `max_signals` per run), waking it if it
        is parked; the workers hear of a woken run as of a queued one."""
        async with self._write() as session:
            await events.locked(session, run_id)  # parking holds it too: no signal is missed
            status = await waits.run_status(session, run_id)
            if status is None:
                return Sending.UNKNOWN_RUN
            if status not in ACTIVE_RUN_STATUSES:
                return Sending.RUN_ENDED
            if await waits.signal_count(session, run_id) >= max_signals:
                return Sending.TOO_MANY
            if not await waits.send(session, run_id, name, payload, at):
                return Sending.KEPT
            await notifications.notify(session, notifications.RUNS_QUEUED)
        return Sending.WOKE

    async def restart(
        self, run_id: str, now: datetime, lease_seconds: float, remaining_steps: int
    ) -> Claim | None:
        """A failed or cancelled run running again under this worker's lease, as a claim of a
        run taken over, with `remaining_steps` to run; None when it was neither failed nor
        cancelled. The count is set here, with the status, and not left to the resumed run's
        start: until then the run would read as running with nothing left to do."""
        async with self._write() as session:
            recorder = await events.locked(session, run_id)
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
            launch = None
            if changed:
                await elements.forget(session, run_id)  # its fan-outs run again, if at all
                launch = await runs.launch_of(session, run_id)
            watched = changed and recorder.watched
            if watched:
                await recorder.record([events.run_event(run_id, RunStatus.RUNNING, now)])
                await notifications.notify(session, notifications.RUN_EVENTS, run_id)
        if watched:
            self._written([run_id])
        if launch is None:
            return None
        definition_id, traceparent = launch
        return Claim(run_id, definition_id, None, taken_over=True, traceparent=traceparent)

    # The engine's transitions.

    async def load(self, run_id: str) -> StoredRun:
        async with self._read() as session:
            found = await reads.stored(session, run_id)
            shared = await elements.shared_steps(session, run_id) if found else frozenset()
        if found is None:
            raise UnknownRunError(f"no run has the id {run_id!r}")
        return replace(found, shared=shared) if shared else found

    async def committed(self, run_id: str) -> None:
        if self.fast is not None:
            with passing_failures_translated():
                await self.fast.committed(run_id)

    async def run_started(self, run: NewRun) -> None:
        """The run row and a pending task per step exist (`create` made them)."""
        if self.fast is not None and not run.resumed:
            with passing_failures_translated():
                await self.fast.start_new_run(run)
            return
        async with self._holding(run.run_id) as held:
            started = {
                "run": run.run_id,
                "at": run.started_at,
                "remaining": len(run.steps),
                "woken": bool(run.waiting),
            }
            await held.db.execute(tasks.START_RUN, started)
            # A resumed run resets the tasks it runs again (not a waiting one, nor one never
            # run: their rows stay as they are), in place: a row keeps its id, so the run's
            # steps keep their order.
            replaced = run.replaced
            if run.resumed and replaced:
                steps = {"run": run.run_id, "steps": replaced}
                await held.db.execute(tasks.DROP_ELEMENTS, steps)
                await held.db.execute(tasks.RESET_STEPS, steps)
                pending = TaskStatus.PENDING
                at = run.started_at
                await held.record(
                    [events.step_event(run.run_id, step, 0, pending, at) for step in replaced],
                )
            if run.ready:
                queued = {"run": run.run_id, "steps": list(run.ready), "at": run.started_at}
                await held.record_from(events.QUEUED_BEFORE, queued)
                await held.db.execute(tasks.QUEUE_STEPS, queued)

    async def tasks_expanded(self, run_id: str, step_id: str, count: int) -> None:
        if count <= 1:
            return
        if self.fast is not None:
            with passing_failures_translated():
                await self.fast.expand(run_id, step_id, count)
            return
        at = utcnow()
        async with self._holding(run_id) as held:
            await held.db.execute(
                insert(TASKS),
                [tasks.new_task(run_id, step_id, index, True) for index in range(1, count)],
            )
            queued = TaskStatus.QUEUED
            await held.record(
                [events.step_event(run_id, step_id, i, queued, at) for i in range(1, count)],
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
        async with self._holding(run_id) as held:
            await held.record(events.start_mark(run_id, key, mark))
            await held.db.execute(tasks.RETRY_TASK, retry)
            # The event is the failure's, now; `at` of the task is when it may run again.
            await held.record_from(events.TASK_CHANGED, {**retry, "at": utcnow()})
            if log is not None:
                logged = tasks.log_values(run_id, key, log, utcnow())
                await held.db.execute(tasks.ADD_LOG, logged)

    async def task_finished(self, run_id: str, finish: TaskFinish) -> None:
        if finish.recorded:
            await self._fan_out_settled(run_id, finish)
            return
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
        async with self._holding(run_id) as held:
            if mark is None:  # started long ago: the finish's event as the row now says
                await held.db.execute(tasks.FINISH_TASK, finished)
                await held.record_from(events.TASK_CHANGED, finished)
            else:  # the usual short step: its start and its end, known here, in one insert
                await held.record(events.started_and_finished(run_id, finish, mark))
                await held.db.execute(tasks.FINISH_TASK, finished)
            if finish.log is not None:
                logged = tasks.log_values(run_id, finish.key, finish.log, finish.at)
                await held.db.execute(tasks.ADD_LOG, logged)
            if finish.status is TaskStatus.FAILED:  # a failed element ends its fan-out
                step_id = finish.key.step_id
                await runs.cancel_unfinished_tasks(held, run_id, finish.at, step_id)
            if finish.released:
                released = {"run": run_id, "steps": list(finish.released), "at": finish.at}
                await held.record_from(events.QUEUED_BEFORE, released)
                await held.db.execute(tasks.RELEASE_STEPS, released)
            if finish.ended is not None:
                await _end(held, run_id, finish.ended)
            elif finish.step_finished:
                await held.db.execute(tasks.STEP_FINISHED, {"run": run_id})

    async def _fan_out_settled(self, run_id: str, finish: TaskFinish) -> None:
        """A shared fan-out's step settles: its elements' rows hold their ends already (the
        workers wrote them); its release, count or the run's end, and its row's removal."""
        async with self._holding(run_id) as held:
            await elements.settled(held.db, run_id, finish.key.step_id)
            if finish.released:
                released = {"run": run_id, "steps": list(finish.released), "at": finish.at}
                await held.record_from(events.QUEUED_BEFORE, released)
                await held.db.execute(tasks.RELEASE_STEPS, released)
            if finish.ended is not None:
                await _end(held, run_id, finish.ended)
            else:
                await held.db.execute(tasks.STEP_FINISHED, {"run": run_id})

    async def run_finished(self, run_id: str, ended: RunEnd) -> None:
        async with self._holding(run_id) as held:
            await _end(held, run_id, ended)

    async def task_waiting(self, run_id: str, key: TaskKey, until: datetime | None) -> None:
        async with self._holding(run_id) as held:
            await waits.task_waiting(held, run_id, key, until, utcnow())

    async def signal_taken(self, run_id: str, key: TaskKey, name: str) -> Signal | None:
        async with self._holding(run_id) as held:
            return await waits.take_signal(held.db, run_id, key, name)

    async def run_parked(
        self,
        run_id: str,
        until: datetime | None,
        signals: Sequence[str],
        children: Sequence[str] = (),
        fan_outs: Sequence[str] = (),
    ) -> bool:
        async with self._holding(run_id) as held:
            if fan_outs and await elements.any_ended(held.db, run_id, fan_outs):
                return False
            return await waits.park(held.db, run_id, until, signals, children)

    # Shared fan-outs (docs/architecture.md, "Fan-out across workers").

    async def fan_out_shared(self, run_id: str, fan_out: SharedFanOut) -> bool:
        """The elements are claimable by any worker once this commits (the workers are
        notified on PostgreSQL; on SQLite this process's loop claims them)."""
        async with self._holding(run_id) as held:
            await elements.share(held, run_id, fan_out, utcnow())
            await notifications.notify(held.db, notifications.ELEMENTS_QUEUED)
        return True

    async def fan_out_result(self, run_id: str, step_id: str) -> FanOutResult | None:
        async with self._holding(run_id) as held:
            return await elements.result(held.db, run_id, step_id)

    async def claim_elements(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[ElementWork]:
        async with self._write() as session:
            works, watched = await elements.claim(session, self.owner, now, lease_seconds, limit)
            await self._notify_watchers(session, watched)
        self._written(watched)
        return works

    async def renew_elements(
        self, task_ids: Collection[int], now: datetime, lease_seconds: float
    ) -> set[int]:
        async with self._write() as session:
            return await elements.renew(session, self.owner, task_ids, now, lease_seconds)

    async def release_elements(self, task_ids: Collection[int], now: datetime) -> None:
        """The workers are told (PostgreSQL) that elements wait: one takes them at once."""
        async with self._write() as session:
            await elements.release(session, self.owner, task_ids, now)
            await notifications.notify(session, notifications.ELEMENTS_QUEUED)

    async def finish_elements(self, finishes: Sequence[ElementFinish]) -> set[int]:
        """One transaction for the batch; a run woken here is claimed by any worker (the
        workers are notified on PostgreSQL)."""
        async with self._write() as session:
            written, woken, watched = await elements.finish(session, self.owner, finishes)
            if woken:
                await notifications.notify(session, notifications.RUNS_QUEUED)
            await self._notify_watchers(session, watched)
        self._written(watched)
        return written

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
        async with self._holding(run_id) as held:
            await held.record_from(events.RUNNING_BEFORE, started)
            await held.db.execute(tasks.MARK_STARTED, started)

    # Transactions.

    @contextlib.asynccontextmanager
    async def _holding(self, run_id: str) -> AsyncIterator[events.Recorder]:
        """A transaction that holds the run's lease (else `LeaseLostError`, nothing written)
        and writes the run's events when it is watched; its watchers hear of them once it
        commits. The run's writes the fast path has not committed yet go first."""
        await self.committed(run_id)
        with passing_failures_translated():
            async with self.engine.begin() as connection:
                held = await queue.hold(connection, run_id, self.owner, utcnow())
                yield held
                if held.watched:
                    await notifications.notify(connection, notifications.RUN_EVENTS, run_id)
        if held.watched:
            self._written([run_id])

    async def _notify_watchers(self, session: AsyncSession, run_ids: Sequence[str]) -> None:
        """On PostgreSQL, tell every process's watchers of these runs' new events with the
        commit (elsewhere `_written` tells this process's, after it)."""
        for payload in events.pg_notify_payloads(run_ids) if self.notifies else ():
            await notifications.notify(session, notifications.RUN_EVENTS, payload)

    def _written(self, run_ids: Sequence[str]) -> None:
        """Tell this process's watchers of the runs' new events, where the store does not."""
        if not self.notifies:
            for run_id in run_ids:
                self._events_written(run_id)

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


def _nobody_watches(_run_id: str) -> None:
    pass


async def _creation(answer: asyncio.Future[Any]) -> Creation:
    with passing_failures_translated():
        return Creation(await asyncio.shield(answer))


async def _end(held: events.Recorder, run_id: str, ended: RunEnd) -> None:
    await runs.end(held, run_id, ended.status, ended.at, outputs=ended.outputs, error=ended.error)

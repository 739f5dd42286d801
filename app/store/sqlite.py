"""`SqlitePath`: SQLite's fast path of the run store, with group commit. The run store
(`run_store.py`) chooses it at construction on SQLite and takes the portable path for what it
does not cover (resumed runs, retries, waits, cancellation), as with `PostgresPath`.

The transitions every step goes through (a run's creation, the start of a new run, a
fan-out's expansion, a task's start mark and its finish, the finish that ends a run) are
queued (`group_commit.GroupCommit`); writes that arrive while a commit is in flight are
committed together by the next one. A whole batch — `BEGIN IMMEDIATE`, its writes,
`COMMIT` — is one synchronous function (`_commit_on_thread`) run on the thread of
the pool's one aiosqlite connection: one hop from the event loop and back per batch, where the
portable path makes one per statement and holds the connection while Python runs between
them. The connection is checked out of SQLAlchemy's pool for the batch, so the batch's
transaction never interleaves with a portable one, and every write still goes through the
process's one connection (database.py says why), whose reads see each commit.

A write the store refuses (a constraint) undoes its batch, whose writes are then committed
one by one (`GroupCommit`), so that it fails alone; a passing failure
(`sqlite3.OperationalError`: the disk, a lock held by another process) fails the batch. A
lease-checked write this worker no longer holds raises `LeaseLostError` and wrote nothing.
The watchers of the runs a batch changed are told once it commits (`on_events`), as after the
portable path's transactions.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Dialect, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.clock import utcnow
from app.domain.records import Creation, NewRunRow
from app.domain.runs import TaskKey, TaskStatus
from app.engine.store import NewRun, TaskFinish
from app.store.group_commit import GroupCommit, RunWrites
from app.store.models import EVENTS, RUNS, TASK_LOGS, TASKS
from app.store.queries import events, runs, tasks
from app.store.queries import sqlite_transitions as transitions
from app.store.run_progress import (
    Created,
    Finished,
    Progress,
    Started,
    created_part_answer,
    fold,
    mergeable,
    merges,
)
from app.store.start_marks import StartMark
from app.store.types import UTCDateTime


@dataclass(frozen=True)
class _Write:
    """One transition waiting for the next group commit: `apply(cursor, *args)` on the
    connection's thread; its answer (a lease-checked one's: whether `run_id` is watched)."""

    run_id: str
    apply: Callable[..., Any]
    args: tuple[Any, ...] | Callable[[], tuple[Any, ...]]  # or what makes them, when applied
    progress: Progress | None = None  # what a batch may merge with the run's creation

    def applied(self, cursor: sqlite3.Cursor) -> Any:
        args = self.args() if callable(self.args) else self.args
        return self.apply(cursor, *args)


class SqlitePath:
    def __init__(
        self, engine: AsyncEngine, owner: str, written: Callable[[Sequence[str]], None]
    ) -> None:
        """`written`: told of the runs whose events a commit wrote (`SqlRunStore._written`)."""
        self.engine = engine
        self.owner = owner
        self._written = written
        self._encode = SqliteEncoder(engine.dialect)
        self._writes = GroupCommit(self._commit)
        self._runs = RunWrites(self._writes)

    @property
    def commits(self) -> int:
        """Group commits made (tests and bench/ count them)."""
        return self._writes.commits

    async def create(self, run: NewRunRow) -> Creation:
        """The run and a pending task per step, unless its key is taken or its version stale."""
        answer: Creation = await self._writes.submit(self._created(run))
        return answer

    def create_later(self, run: NewRunRow) -> asyncio.Future[Any]:
        """`create` for a run this process executes at once (it holds its lease), in the
        commit of its first progress rather than one of its own (`RunWrites.create_later`):
        the future of its `Creation`."""
        return self._runs.create_later(run.run_id, self._created(run, later=True))

    async def start_new_run(self, run: NewRun) -> None:
        arguments = functools.partial(self._start_arguments, run)
        progress = Started(run.started_at, len(run.steps), run.ready)
        write = _Write(run.run_id, transitions.start_run, arguments, progress)
        # Not waited for: a start lost in a crash loses nothing the run did.
        self._runs.write_later(run.run_id, write)

    def _start_arguments(self, run: NewRun) -> tuple[Any, ...]:
        """`transitions.start_run`'s parameters after the cursor (made as it is applied)."""
        encode = self._encode
        held = self._lease_check(run.run_id)
        started = {
            "run": run.run_id,
            "at": encode.time(run.started_at),
            "remaining": len(run.steps),
            "woken": bool(run.waiting),
            "none": encode.json(None),
            "ready": bool(run.ready),
            "steps": json.dumps(list(run.ready)),
        }
        return held, started

    async def expand(self, run_id: str, step_id: str, count: int) -> None:
        """Elements 1..count-1 of a fan-out, queued: rows the statement makes."""
        encode = self._encode
        expanded = {
            "run": run_id,
            "step": step_id,
            "count": count,
            "at": encode.time(utcnow()),
            "none": encode.json(None),  # the events' error, as `events.step_event` has it
        }
        await self._transition(run_id, transitions.expand, expanded)

    async def mark_started(self, run_id: str, key: TaskKey, mark: StartMark) -> None:
        started = self._task(run_id, key, mark)
        started["owner"] = self.owner
        await self._transition(run_id, transitions.mark_started, started)

    async def finish(self, run_id: str, finish: TaskFinish, mark: StartMark | None) -> None:
        # Its parameters are made as it is applied, on the connection's thread: never, when
        # the run's creation takes the finish along (`_units`).
        arguments = functools.partial(self._finish_arguments, run_id, finish, mark)
        write = _Write(run_id, transitions.finish, arguments, Finished(finish, mark))
        if finish.pure and finish.ended is None:
            self._runs.write_later(run_id, write)
        else:
            await self._runs.write(run_id, write)

    def _finish_arguments(
        self, run_id: str, finish: TaskFinish, mark: StartMark | None
    ) -> tuple[Any, ...]:
        """`transitions.finish`'s parameters after the cursor."""
        encode = self._encode
        held = self._lease_check(run_id)
        finished = self._task(run_id, finish.key, mark)
        finished.update(
            state=finish.status.value,
            result=encode.json(finish.outputs),
            failure=encode.json(runs.error_value(finish.error)),
            at=encode.time(finish.at),
            owner=self.owner,
            failed=finish.status is TaskStatus.FAILED,
            released=bool(finish.released),
            steps=json.dumps(list(finish.released)),
            step_finished=finish.step_finished,
        )
        # Events are written for a watched run only: made then.
        recorded = (
            None
            if mark is None
            else lambda: self._encoded(events.started_and_finished(run_id, finish, mark))
        )
        log = finish.log
        logged = (
            None
            if log is None
            else encode.row(TASK_LOGS, tasks.log_values(run_id, finish.key, log, finish.at))
        )
        ended = None
        if finish.ended is not None:
            end = finish.ended
            failure = runs.error_value(end.error)
            ended = {
                "run": run_id,
                "state": end.status.value,
                "result": encode.json(end.outputs),
                "failure": encode.json(failure),
                "at": encode.time(end.at),
                "event": lambda: self._encoded(
                    [events.run_event(run_id, end.status, end.at, failure)]
                )[0],
            }
        return held, finished, recorded, logged, ended

    async def committed(self, run_id: str) -> None:
        await self._runs.committed(run_id)

    async def landed(self, run_id: str) -> None:
        await self._runs.landed(run_id)

    async def aclose(self) -> None:
        """Let the writes already queued commit."""
        await self._writes.aclose()

    def _encoded(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self._encode.row(EVENTS, row) for row in rows]

    def _created(self, run: NewRunRow, *, later: bool = False) -> _Write:
        """The run's creation; `later`: merged with the progress it is queued before."""
        arguments = functools.partial(self._creation_arguments, run)
        return _Write(run.run_id, transitions.create, arguments, Created(run) if later else None)

    def _creation_arguments(self, run: NewRunRow) -> tuple[Any, ...]:
        """`transitions.create`'s parameters after the cursor (made as it is applied): the
        run's row and its pending tasks'."""
        encode = self._encode.row
        row = encode(RUNS, runs.run_row(run))
        pending = [encode(TASKS, runs.pending_task(run.run_id, step)) for step in run.step_ids]
        return row, pending, run.latest_only

    def _created_with_progress(self, parts: Sequence[Progress]) -> _Write:
        """A run's creation and the progress queued after it in one batch, as one write: its
        rows inserted as the creation and that progress, one by one, would leave them (a test
        compares). A run nobody knew of has no watchers: no events. Its parameters are made
        as it is applied, as a finish's are."""
        created = parts[0]
        assert isinstance(created, Created)
        arguments = functools.partial(self._progressed_rows, created.run, parts)
        return _Write(created.run.run_id, transitions.create, arguments)

    def _progressed_rows(self, new: NewRunRow, parts: Sequence[Progress]) -> tuple[Any, ...]:
        row, pending, latest_only = self._creation_arguments(new)
        folded = fold(parts)
        assert folded.started is not None
        encode = self._encode
        ended = folded.ended.finish.ended if folded.ended is not None else None
        run = {
            **row,
            "started_at": encode.time(folded.started.at),
            "remaining_steps": folded.started.steps - folded.steps_finished,
            "outputs": encode.json(None),
            "error": encode.json(None),
            "finished_at": None,
        }
        if ended is not None:
            run.update(
                status=ended.status.value,
                outputs=encode.json(ended.outputs),
                error=encode.json(runs.error_value(ended.error)),
                finished_at=encode.time(ended.at),
                remaining_steps=0,
                lease_owner=None,
                lease_expires_at=None,
            )
        finished = {part.finish.key.step_id: (part, at) for part, at in folded.finished}
        tasks_ = []
        for task in pending:
            step_id = task["step_id"]
            values = {
                **task,
                **dict.fromkeys(("outputs", "error", "started_at", "finished_at")),
                **dict.fromkeys(("lease_owner", "available_at")),
            }
            if step_id in finished:
                part, queued_at = finished[step_id]
                finish = part.finish
                attempt, started_at = part.mark or (None, None)
                values.update(
                    status=finish.status.value,
                    outputs=encode.json(finish.outputs),
                    error=encode.json(runs.error_value(finish.error)),
                    finished_at=encode.time(finish.at),
                    started_at=encode.time(started_at),
                    lease_owner=self.owner,
                    available_at=encode.time(queued_at),
                )
                if attempt is not None:
                    values["attempts"] = attempt
            elif step_id in folded.queued:
                values.update(status=TaskStatus.QUEUED.value)
                values["available_at"] = encode.time(folded.queued[step_id][0])
            if ended is not None and step_id not in finished:
                values.update(status=TaskStatus.CANCELLED.value, finished_at=encode.time(ended.at))
            tasks_.append(values)
        logs = [
            encode.row(
                TASK_LOGS,
                tasks.log_values(row["id"], part.finish.key, part.finish.log, part.finish.at),
            )
            for part in folded.logged
            if part.finish.log is not None
        ]
        return run, tasks_, latest_only, logs

    def _task(self, run_id: str, key: TaskKey, mark: StartMark | None) -> dict[str, Any]:
        """The parameters that name a task, with its unwritten start mark (`tasks.task_values`)."""
        attempt, started = mark or (None, None)
        return {
            "run": run_id,
            "step": key.step_id,
            "index": key.task_index,
            "attempt": attempt,
            "started": self._encode.time(started),
        }

    async def _transition(self, run_id: str, apply: Callable[..., Any], *args: Any) -> None:
        """Commit a lease-checked transition with the next group commit."""
        await self._runs.write(run_id, self._held(run_id, apply, *args))

    def _held(self, run_id: str, apply: Callable[..., Any], *args: Any) -> _Write:
        """A transition that first checks this worker holds the run's lease."""
        return _Write(run_id, apply, lambda: (self._lease_check(run_id), *args))

    def _lease_check(self, run_id: str) -> dict[str, Any]:
        """The lease check's parameters (`transitions.HOLD`), made as its write is applied:
        the lease is checked as of the commit (and not at all for a start or a finish the
        run's creation takes along)."""
        return {"run": run_id, "owner": self.owner, "now": self._encode.time(utcnow())}

    async def _commit(self, batch: list[_Write]) -> list[Any]:
        """One transaction for the batch, on the connection's thread; each write's answer."""
        units = self._units(batch)
        done = await self._commit_units([write for write, _ in units])
        answers: list[Any] = [None] * len(batch)
        for (_, positions), answer in zip(units, done, strict=True):
            answers[positions[0]] = answer
            for position in positions[1:]:  # merged with the run's creation
                answers[position] = created_part_answer(answer)
        return answers

    def _units(self, batch: list[_Write]) -> list[tuple[_Write, list[int]]]:
        """The batch's writes in order, each run created later merged with the progress
        queued after it where it may be (`run_progress.merges`), at the creation's place."""
        writes_of: dict[str, list[int]] = defaultdict(list)
        for position, write in enumerate(batch):
            writes_of[write.run_id].append(position)
        merged: dict[int, tuple[_Write, list[int]]] = {}
        for positions in writes_of.values():
            if not isinstance(batch[positions[0]].progress, Created):
                continue
            segment = [positions[0]]
            for position in positions[1:]:
                progress = batch[position].progress
                if progress is None or not mergeable(progress):
                    break
                segment.append(position)
            parts = [progress for position in segment if (progress := batch[position].progress)]
            if merges(parts):
                merged[segment[0]] = (self._created_with_progress(parts), segment)
        covered = {position for _, segment in merged.values() for position in segment[1:]}
        return [
            merged.get(position, (write, [position]))
            for position, write in enumerate(batch)
            if position not in covered
        ]

    async def _commit_units(self, batch: list[_Write]) -> list[Any]:
        async with self.engine.connect() as connection:
            pooled = await connection.get_raw_connection()
            driver = pooled.driver_connection  # the aiosqlite connection
            assert driver is not None
            # aiosqlite runs every call on its connection's thread, one at a time; `_execute`
            # queues a function there (its own methods use it), and sqlite3 refuses a
            # connection used from another thread. aiosqlite is pinned (requirements.txt).
            answers: list[Any] = await driver._execute(_commit_on_thread, driver._conn, batch)
        written = zip(batch, answers, strict=True)
        changed = [write.run_id for write, answer in written if answer is True]
        if changed:
            self._written(changed)
        return answers


def _commit_on_thread(connection: sqlite3.Connection, batch: list[_Write]) -> list[Any]:
    """Run the batch in one transaction. A write that fails undoes the batch and raises:
    `GroupCommit` then commits each write on its own, so that a refused one fails alone
    (a savepoint around each write, for that rare case, cost two statements a write)."""
    cursor = connection.cursor()
    # IMMEDIATE: the write lock from the start; a deferred transaction that reads first may
    # fail to upgrade when another process (the command line) wrote meanwhile.
    cursor.execute("BEGIN IMMEDIATE")
    try:
        answers = [write.applied(cursor) for write in batch]
        connection.commit()
    except BaseException:
        if connection.in_transaction:
            connection.rollback()
        raise
    finally:
        cursor.close()
    return answers


class SqliteEncoder:
    """Values as SQLAlchemy writes them on SQLite, by the columns' own types (JSON text,
    naive UTC timestamps in its format), so that both paths store the same bytes and the
    portable reads compare them alike."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._json = _processor(JSON(), dialect)
        self._null = self._json(None)  # most of a write's JSON values: outputs and errors unset
        self._tables: dict[str, tuple[dict[str, Callable[[Any], Any]], dict[str, Any]]] = {}

    def json(self, value: Any) -> Any:
        """A value of a JSON column, as its processor writes it."""
        return self._null if value is None else self._json(value)

    @staticmethod
    def time(value: datetime | None) -> str | None:
        """`UTCDateTime` on SQLite (naive UTC, always with microseconds), as its processors
        write it (a test compares them) at a fraction of their cost: a write encodes several."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware UTC")
        if value.tzinfo is not UTC:  # the service's own times are UTC already
            value = value.astimezone(UTC)
        # Without its offset, "+00:00" (six characters): a third cheaper than `replace`.
        return value.isoformat(" ", "microseconds")[:-6]

    def row(self, table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
        """The row to insert: its values encoded, with the columns' Python-side defaults for
        those it leaves out, as SQLAlchemy's insert adds them."""
        processors, defaults = self._columns(table)
        row = {**values, **{name: arg for name, arg in defaults.items() if name not in values}}
        for name, processor in processors.items():
            if name in row:
                row[name] = processor(row[name])
        return row

    def _columns(self, table: Table) -> tuple[dict[str, Callable[[Any], Any]], dict[str, Any]]:
        known = self._tables.get(table.name)
        if known is None:
            processors: dict[str, Callable[[Any], Any]] = {}
            defaults: dict[str, Any] = {}
            for column in table.columns:
                processor = column.type.dialect_impl(self._dialect).bind_processor(self._dialect)
                if isinstance(column.type, UTCDateTime):
                    processor = self.time
                if processor is not None:
                    processors[column.name] = processor
                default = column.default
                if default is not None and default.is_scalar:
                    defaults[column.name] = default.arg  # type: ignore[attr-defined]
            known = self._tables[table.name] = (processors, defaults)
        return known


def _processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any]:
    processor = type_.dialect_impl(dialect).bind_processor(dialect)
    return processor if processor is not None else _same


def _same(value: Any) -> Any:
    return value

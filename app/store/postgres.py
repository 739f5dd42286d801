"""`PostgresPath`: PostgreSQL's fast path of the run store, one statement per transition, with
group commit. The run store (`run_store.py`) chooses it at construction on PostgreSQL and
takes the portable path for what it does not cover (resumed runs, retries, cancellation).

The transitions every step goes through (a new run's creation and start, a fan-out's
expansion, a task's start mark and its finish, the finish that ends a run) each run as one
statement of `queries/` on the pool's asyncpg connection. Writes that arrive while a commit is
in flight are committed together by the next one: a batch of N writes is one transaction and
one round trip per kind of statement (asyncpg pipelines `fetchmany`), so the commits per run
fall as the load rises, while a lone write still commits at once on its own. A batch of one
kind of statement (the API's creations; a worker's merged progress, `run_progress.py`) is a
single pipeline, its own transaction, without BEGIN and COMMIT round trips. Every statement
checks the writer's lease; a refused write raises `LeaseLostError` in the coroutine that asked
for it.

The writes the engine lets the store commit later (a new run's start, a pure task's finish:
`app/engine/store.py`) join the queue without their caller waiting for them: a run of `set`
steps reports its whole chain in the time of one commit. Their answers are checked by the
run's next awaited write, or by `committed`, and raise there. A batch applies each run's
writes in the order they came (by rounds: every run's first write, then every second...).

Each transition of a watched run inserts its events in its own statement (`queries/events.py`)
and answers that the run is watched; their watchers are notified once per commit: one
`pg_notify` per batch, whose payload lists the batch's watched runs (one per statement would
add to every commit's work), or, for a write committed on its own, right after it. A batch
with no watched run sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.domain.clock import utcnow
from app.domain.records import Claim, Creation, NewRunRow
from app.domain.runs import TaskKey
from app.engine.store import NewRun, TaskFinish
from app.store.group_commit import GroupCommit, RunWrites
from app.store.queries import events, queue, runs, tasks, versions
from app.store.run_progress import (
    Created,
    Finished,
    Progress,
    Started,
    created_part_answer,
    json_text,
    mergeable,
    merged_arguments,
    merges,
)
from app.store.start_marks import StartMark


@dataclass(frozen=True)
class _Write:
    """One statement waiting for the next group commit; its answer is the one value it
    selects."""

    sql: str
    args: tuple[Any, ...]  # the run's id first
    transition: bool = False  # lease-checked: it answers whether its run is watched
    progress: Progress | None = None  # what a batch may merge with the run's next writes


@dataclass(frozen=True)
class _Unit:
    """What a batch executes: one write, or a run's consecutive progress merged into one
    statement (`parts`), answering for each of the positions it covers."""

    write: _Write
    positions: list[int]
    parts: list[_Write]
    creates: bool = False  # the first position is the run's creation (`create_later`)


class PostgresPath:
    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        self.engine = engine
        self.owner = owner
        self._writes = GroupCommit(self._commit)
        self._runs = RunWrites(self._writes)
        self._committing: AsyncConnection | None = None  # the group commit's (`_commit`)
        self._committing_raw: Any = None  # its asyncpg connection

    async def locate(self, name: str, number: int | None) -> tuple[int, int] | None:
        """(id, version) in one round trip; None when not found."""
        if number is None:
            found = await self._fetchrow(versions.PG_LATEST, name)
        else:
            found = await self._fetchrow(versions.PG_GIVEN, name, number)
        return None if found is None else (int(found[0]), int(found[1]))

    async def create(self, run: NewRunRow) -> Creation:
        """A run created, in one statement: with its lease (`/execute`), or queued, the
        workers notified by the commit that creates it (`runs.PG_CREATE`)."""
        return Creation(await self._writes.submit(_created(run)))

    def create_later(self, run: NewRunRow) -> asyncio.Future[Any]:
        """`create` for a run this process executes at once (it holds its lease), in the
        commit of its first progress rather than one of its own (`RunWrites.create_later`):
        the future of its `Creation`'s text."""
        return self._runs.create_later(run.run_id, _created(run, later=True))

    async def claim(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> tuple[list[Claim], bool]:
        """Claim the due runs, then the queued ones up to the first with a concurrency key, in
        one statement and one round trip (`queue.PG_CLAIM`); also whether it met a keyed run
        (the caller's portable claim takes it and those after it, counting its key's runs)."""
        expires = now + timedelta(seconds=lease_seconds)
        async with self._connection() as raw:
            rows = await raw.fetch(queue.PG_CLAIM, self.owner, now, expires, limit)
        claims = [
            Claim(
                row["id"],
                row["definition_id"],
                row["inputs"],
                row["taken_over"],
                row["traceparent"],
                woken=row["woken"],
            )
            for row in rows
            if row["id"] is not None
        ]
        return claims, rows[0]["keyed_met"]

    async def start_new_run(self, run: NewRun) -> None:
        """Queued, not waited for: a start lost in a crash loses nothing the run did."""
        started = Started(run.started_at, len(run.steps), run.ready)
        self._runs.write_later(run.run_id, self._started(run.run_id, started))

    async def expand(self, run_id: str, step_id: str, count: int) -> None:
        await self._write(run_id, tasks.PG_EXPAND, step_id, count)

    async def mark_started(self, run_id: str, key: TaskKey, mark: StartMark) -> None:
        attempt, at = mark
        await self._write(run_id, tasks.PG_MARK_STARTED, key.step_id, key.task_index, attempt, at)

    async def finish(self, run_id: str, finish: TaskFinish, mark: StartMark | None) -> None:
        write = self._finished(run_id, Finished(finish, mark))
        if finish.pure and finish.ended is None:
            self._runs.write_later(run_id, write)
        else:
            await self._runs.write(run_id, write)

    def _started(self, run_id: str, started: Started) -> _Write:
        arguments = (started.at, started.steps, list(started.ready))
        return self._held(run_id, tasks.PG_START_NEW_RUN, *arguments, progress=started)

    def _finished(self, run_id: str, finished: Finished) -> _Write:
        finish = finished.finish
        task = (finish.key.step_id, finish.key.task_index, *finished.values)
        logged = finished.logged or (None, None, None)
        if finished.run_end is None:
            released = list(finish.released)
            steps_finished = 1 if finish.step_finished else 0
            arguments = (*task, released, steps_finished, *logged)
            return self._held(run_id, tasks.PG_FINISH_TASK, *arguments, progress=finished)
        arguments = (*task, *finished.run_end, *logged)
        return self._held(run_id, tasks.PG_FINISH_TASK_AND_RUN, *arguments, progress=finished)

    @property
    def commits(self) -> int:
        """Group commits made (bench/ reports commits per run)."""
        return self._writes.commits

    async def aclose(self) -> None:
        """Let the writes already queued commit; give the group commit's connection back."""
        await self._writes.aclose()
        await self._close_committing()

    async def committed(self, run_id: str) -> None:
        await self._runs.committed(run_id)

    async def landed(self, run_id: str) -> None:
        await self._runs.landed(run_id)

    async def _write(self, run_id: str, sql: str, *args: Any) -> None:
        """Commit a lease-checked statement with the next group commit."""
        await self._runs.write(run_id, self._held(run_id, sql, *args))

    def _held(self, run_id: str, sql: str, *args: Any, progress: Progress | None = None) -> _Write:
        """A statement that first checks this worker holds the run's lease."""
        arguments = (run_id, self.owner, utcnow(), *args)
        return _Write(sql, arguments, transition=True, progress=progress)

    async def _commit(self, batch: list[_Write]) -> list[Any]:
        """One transaction for the batch; each write's answer (a lease-checked write's: whether
        its run is watched, None when it did not hold its lease and wrote nothing)."""
        rounds = _rounds(_units(batch))
        answers: list[Any] = [None] * len(batch)
        # One statement for the whole batch: its pipeline is a transaction of its own
        # (asyncpg's `fetchmany` syncs once), without BEGIN and COMMIT round trips.
        one_statement = len(rounds) == 1 and len(rounds[0]) == 1
        raw = await self._committing_connection()
        try:
            async with contextlib.nullcontext() if one_statement else raw.transaction():
                await _apply(raw, rounds, answers)
                await _notify(raw, batch, answers)
        except BaseException:  # perhaps broken: the pool checks it (and replaces it)
            await self._close_committing()
            raise
        return answers

    async def _committing_connection(self) -> Any:
        """The group commit's asyncpg connection: a pool connection it keeps between
        commits, which only it uses, one batch at a time (a checkout from the pool and back
        took the time of three round trips)."""
        if self._committing is None:
            self._committing = await self.engine.connect()
            raw = (await self._committing.get_raw_connection()).driver_connection
            assert raw is not None
            self._committing_raw = raw
        return self._committing_raw

    async def _close_committing(self) -> None:
        committing, self._committing, self._committing_raw = self._committing, None, None
        if committing is not None:
            await committing.close()

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        """A read, in autocommit: one round trip."""
        async with self._connection() as raw:
            return await raw.fetchrow(sql, *args)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pool connection's asyncpg connection, for the statements of `queries/`."""
        async with self.engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            yield raw


def _created(run: NewRunRow, *, later: bool = False) -> _Write:
    """The run's creation; `later`: merged with the progress it is queued before."""
    arguments = runs.pg_create_arguments(run, json_text(run.inputs) or "null")
    return _Write(runs.PG_CREATE, arguments, progress=Created(run) if later else None)


def _units(batch: list[_Write]) -> list[_Unit]:
    """The batch's writes, grouped by run in the order they came, each run's consecutive
    progress merged into one statement where it may be (`run_progress.py`)."""
    writes_of: dict[str, list[int]] = defaultdict(list)
    for position, write in enumerate(batch):
        writes_of[write.args[0]].append(position)
    units: list[_Unit] = []
    for positions in writes_of.values():
        segment: list[int] = []
        for position in positions:
            progress = batch[position].progress
            if progress is not None and mergeable(progress):
                segment.append(position)
                continue
            units.extend(_merged(batch, segment))
            segment = []
            units.append(_Unit(batch[position], [position], []))
        units.extend(_merged(batch, segment))
    return units


def _merged(batch: list[_Write], segment: list[int]) -> list[_Unit]:
    """A run's consecutive mergeable writes as one unit, or one each when they do not merge."""
    parts = [batch[position] for position in segment]
    progress = [part.progress for part in parts if part.progress is not None]
    if not merges(progress):
        return [_Unit(part, [position], []) for part, position in zip(parts, segment, strict=True)]
    if isinstance(progress[0], Created):  # a new run: inserted as it is now
        arguments = (*parts[0].args, *merged_arguments(progress))  # PG_CREATE's, then
        write = _Write(tasks.PG_CREATE_WITH_PROGRESS, arguments)
        return [_Unit(write, segment, parts, creates=True)]
    run_id, owner, now = parts[-1].args[:3]  # the latest time: the strictest lease check
    arguments = (run_id, owner, now, *merged_arguments(progress))
    return [_Unit(_Write(tasks.PG_PROGRESS, arguments, transition=True), segment, parts)]


async def _apply(raw: Any, rounds: list[dict[str, list[_Unit]]], answers: list[Any]) -> None:
    """Run the batch's statements, round after round; record each write's answer."""
    for statements in rounds:
        for sql, members in statements.items():
            rows = await raw.fetchmany(sql, [unit.write.args for unit in members])
            for unit, row in zip(members, rows, strict=True):
                await _answer(raw, unit, row[0], answers)


async def _answer(raw: Any, unit: _Unit, answer: Any, answers: list[Any]) -> None:
    """Record a unit's answer for each write it covers. A merged one that answers that its
    run is watched wrote nothing: its parts are written one by one, with their events. A
    creation's answers: its `Creation`, then for each part, not watched (a run nobody knew
    of), or refused when the run was not created."""
    if unit.creates:
        answers[unit.positions[0]] = answer
        for position in unit.positions[1:]:
            answers[position] = created_part_answer(answer)
        return
    if unit.parts and answer is True:
        for position, part in zip(unit.positions, unit.parts, strict=True):
            answers[position] = await raw.fetchval(part.sql, *part.args)
        return
    for position in unit.positions:
        answers[position] = answer


async def _notify(raw: Any, batch: list[_Write], answers: list[Any]) -> None:
    """Once for the batch: the watchers of the runs it changed (a batch with no watched run
    sends nothing)."""
    changed = [
        write.args[0]
        for write, answer in zip(batch, answers, strict=True)
        if write.transition and answer is True
    ]
    for payload in events.pg_notify_payloads(changed):
        await raw.execute(events.PG_NOTIFY, payload)


def _rounds(units: list[_Unit]) -> list[dict[str, list[_Unit]]]:
    """The batch's units by round, then by statement: round k holds each run's k-th unit,
    so a run's writes apply in the order they came, and a round's units of one statement go
    in one pipelined `fetchmany`.

    Only the lease holder writes a run, and every other writer locks a single run or skips
    locked rows (claims, lease renewal): the transaction never waits in a cycle. Runs go in id
    order all the same.
    """
    rounds: list[dict[str, list[_Unit]]] = []
    units_of: dict[str, int] = defaultdict(int)
    for unit in sorted(units, key=lambda unit: unit.write.args[0]):  # stable
        run_id = unit.write.args[0]
        number = units_of[run_id]
        units_of[run_id] += 1
        if number == len(rounds):
            rounds.append(defaultdict(list))
        rounds[number][unit.write.sql].append(unit)
    return rounds

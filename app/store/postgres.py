"""`PostgresPath`: PostgreSQL's fast path of the run store, one statement per transition, with
group commit. The run store (`run_store.py`) chooses it at construction on PostgreSQL and
takes the portable path for what it does not cover (resumed runs, retries, cancellation).

The transitions every step goes through (a new run's creation and start, a fan-out's
expansion, a task's start mark and its finish, the finish that ends a run) each run as one
statement of `queries/` on the pool's asyncpg connection. Writes that arrive while a commit is
in flight are committed together by the next one: a batch of N writes is one transaction and
one round trip per kind of statement (asyncpg pipelines `fetchmany`), so the commits per run
fall as the load rises, while a lone write still commits at once on its own. Every statement
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

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.clock import utcnow
from app.domain.records import Creation, NewRunRow
from app.domain.runs import RunStatus, TaskKey
from app.engine.store import NewRun, TaskFinish
from app.store.group_commit import GroupCommit, RunWrites
from app.store.notifications import RUNS_QUEUED
from app.store.queries import events, runs, tasks, versions

StartMark = tuple[int, datetime]  # (attempt, started at)


@dataclass(frozen=True)
class _Write:
    """One statement waiting for the next group commit; its answer is the one value it
    selects."""

    sql: str
    args: tuple[Any, ...]  # the run's id first
    transition: bool = False  # lease-checked: it answers whether its run is watched
    notify: str | None = None  # a channel notified with the commit when the run was created


class PostgresPath:
    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        self.engine = engine
        self.owner = owner
        self._writes = GroupCommit(self._commit)
        self._runs = RunWrites(self._writes)

    async def locate(self, name: str, number: int | None) -> tuple[int, int] | None:
        """(id, version) in one round trip; None when not found."""
        if number is None:
            found = await self._fetchrow(versions.PG_LATEST, name)
        else:
            found = await self._fetchrow(versions.PG_GIVEN, name, number)
        return None if found is None else (int(found[0]), int(found[1]))

    async def create(self, run: NewRunRow) -> Creation:
        """A run created, in one statement: with its lease (`/execute`), or queued, the
        workers notified once by the commit that creates it (one notification however many
        runs a group commit creates)."""
        arguments = runs.pg_create_arguments(run, _json(run.inputs) or "null")
        queued = run.status is RunStatus.QUEUED
        write = _Write(runs.PG_CREATE, arguments, notify=RUNS_QUEUED if queued else None)
        return Creation(await self._writes.submit(write))

    async def start_new_run(self, run: NewRun) -> None:
        """Queued, not waited for: a start lost in a crash loses nothing the run did."""
        self._write_later(
            run.run_id, tasks.PG_START_NEW_RUN, run.started_at, len(run.steps), list(run.ready)
        )

    async def expand(self, run_id: str, step_id: str, count: int) -> None:
        await self._write(run_id, tasks.PG_EXPAND, step_id, count)

    async def mark_started(self, run_id: str, key: TaskKey, mark: StartMark) -> None:
        attempt, at = mark
        await self._write(run_id, tasks.PG_MARK_STARTED, key.step_id, key.task_index, attempt, at)

    async def finish(self, run_id: str, finish: TaskFinish, mark: StartMark | None) -> None:
        attempt, started_at = mark or (None, None)
        task = (
            finish.key.step_id,
            finish.key.task_index,
            finish.status.value,
            _json(finish.outputs),
            _json(runs.error_value(finish.error)),
            finish.at,
            attempt,
            started_at,
        )
        log = finish.log
        logged = (
            (None, None, None)
            if log is None
            else (log.attempt, _json(tasks.log_lines(log)), log.truncated)
        )
        ended = finish.ended
        if ended is None:
            steps_finished = 1 if finish.step_finished else 0
            values = (*task, list(finish.released), steps_finished, *logged)
            if finish.pure:
                self._write_later(run_id, tasks.PG_FINISH_TASK, *values)
            else:
                await self._write(run_id, tasks.PG_FINISH_TASK, *values)
        else:
            run_end = (
                ended.status.value,
                _json(ended.outputs),
                _json(runs.error_value(ended.error)),
            )
            await self._write(run_id, tasks.PG_FINISH_TASK_AND_RUN, *task, *run_end, *logged)

    @property
    def commits(self) -> int:
        """Group commits made (bench/ reports commits per run)."""
        return self._writes.commits

    async def aclose(self) -> None:
        """Let the writes already queued commit."""
        await self._writes.aclose()

    async def committed(self, run_id: str) -> None:
        await self._runs.committed(run_id)

    async def landed(self, run_id: str) -> None:
        await self._runs.landed(run_id)

    async def _write(self, run_id: str, sql: str, *args: Any) -> None:
        """Commit a lease-checked statement with the next group commit."""
        await self._runs.write(run_id, self._held(run_id, sql, *args))

    def _write_later(self, run_id: str, sql: str, *args: Any) -> None:
        """Queue a lease-checked statement for the next group commit without waiting."""
        self._runs.write_later(run_id, self._held(run_id, sql, *args))

    def _held(self, run_id: str, sql: str, *args: Any) -> _Write:
        """A statement that first checks this worker holds the run's lease."""
        return _Write(sql, (run_id, self.owner, utcnow(), *args), transition=True)

    async def _commit(self, batch: list[_Write]) -> list[Any]:
        """One transaction for the batch; each write's answer (a lease-checked write's: whether
        its run is watched, None when it did not hold its lease and wrote nothing)."""
        async with self.engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            if len(batch) == 1:
                (write,) = batch
                answer = await raw.fetchval(write.sql, *write.args)
                if write.transition and answer is True:
                    await raw.execute(events.PG_NOTIFY, write.args[0])
                for channel in _channels(batch, [answer]):
                    await raw.execute(_NOTIFY, channel)
                return [answer]
            answers: list[Any] = [None] * len(batch)
            async with raw.transaction():
                for statements in _rounds(batch):
                    for sql, positions in statements.items():
                        rows = await raw.fetchmany(sql, [batch[i].args for i in positions])
                        for position, row in zip(positions, rows, strict=True):
                            answers[position] = row[0]
                changed = [
                    write.args[0]
                    for write, answer in zip(batch, answers, strict=True)
                    if write.transition and answer is True
                ]
                for payload in events.pg_notify_payloads(changed):
                    await raw.execute(events.PG_NOTIFY, payload)
                for channel in _channels(batch, answers):
                    await raw.execute(_NOTIFY, channel)
            return answers

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        """A read, in autocommit: one round trip."""
        async with self.engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            return await raw.fetchrow(sql, *args)


_NOTIFY = "SELECT pg_notify($1, '')"


def _rounds(batch: list[_Write]) -> list[dict[str, list[int]]]:
    """The batch's positions by round, then by statement: round k holds each run's k-th write,
    so a run's writes apply in the order they came, and a round's writes of one statement go
    in one pipelined `fetchmany`.

    Only the lease holder writes a run, and every other writer locks a single run or skips
    locked rows (claims, lease renewal): the transaction never waits in a cycle. Runs go in id
    order all the same.
    """
    rounds: list[dict[str, list[int]]] = []
    writes_of: dict[str, int] = defaultdict(int)
    for position in sorted(range(len(batch)), key=lambda i: batch[i].args[0]):  # stable
        write = batch[position]
        number = writes_of[write.args[0]]
        writes_of[write.args[0]] += 1
        if number == len(rounds):
            rounds.append(defaultdict(list))
        rounds[number][write.sql].append(position)
    return rounds


def _channels(batch: list[_Write], answers: list[Any]) -> set[str]:
    """The channels to notify once for the batch: those of the runs it created."""
    return {
        write.notify
        for write, answer in zip(batch, answers, strict=True)
        if write.notify is not None and answer == Creation.CREATED.value
    }


def _json(value: Any) -> str | None:
    """Plain JSON data (the engine and the service checked it: app.domain.storable) as JSON text."""
    return None if value is None else json.dumps(value, check_circular=False)

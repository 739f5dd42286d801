"""`PgRunStore`: the SQL run store with PostgreSQL's one-statement hot path and group commit.

The transitions every step goes through (a fresh run's start, a fan-out's expansion, a task's
start mark and its finish, the finish that ends a run) each run as one statement of
`pg_queries.py` on the pool's asyncpg connection.
Writes that arrive while a commit is in flight are committed together by the next one: a batch
of N writes is one transaction and one round trip per kind of statement (asyncpg pipelines
`fetchmany`), so the commits per run fall as the load rises, while a lone write still commits
at once on its own. Every statement checks the writer's lease; a refused write raises
`LeaseLostError` in the coroutine that asked for it.

The rarer transitions (resumed runs, retries, cancellation) keep the
portable SQLAlchemy statements of `SqlRunStore`.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.clock import utcnow
from app.domain.records import Creation, NewRunRow
from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus
from app.engine.store import NewRun, RunEnd
from app.errors import LeaseLostError
from app.store import pg_queries
from app.store.database import is_passing_failure
from app.store.run_store import SqlRunStore


@dataclass
class _Write:
    """One statement waiting for the next group commit; `done` gets its answer (the one value
    it selects)."""

    sql: str
    args: tuple[Any, ...]  # the run's id first
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class PgRunStore(SqlRunStore):
    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        super().__init__(engine, owner)
        self._pending: list[_Write] = []
        self._committer: asyncio.Task[None] | None = None
        self.commits = 0  # group commits made (bench/ reports commits per run)

    async def locate(self, name: str, number: int | None) -> tuple[int, int]:
        if number is None:
            found = await self._fetchrow(pg_queries.LATEST_VERSION, name)
        else:
            found = await self._fetchrow(pg_queries.GIVEN_VERSION, name, number)
        if found is None:  # the portable path raises the precise not-found error
            return await super().locate(name, number)
        return int(found[0]), int(found[1])

    async def create_run(self, run: NewRunRow) -> Creation:
        if run.status is RunStatus.QUEUED:  # with its notification, on the portable path
            return await super().create_run(run)
        return Creation(
            await self._submit(
                pg_queries.CREATE_RUN,
                run.run_id,
                run.flow_name,
                run.definition_id,
                run.status.value,
                _json(run.inputs),
                list(run.step_ids),
                run.idempotency_key,
                run.created_at,
                run.lease_owner,
                run.lease_expires_at,
                run.latest_only,
                run.created_by,
            )
        )

    async def run_started(self, run: NewRun) -> None:
        if not run.fresh:
            await super().run_started(run)
            return
        await self._write(
            run.run_id,
            pg_queries.START_FRESH_RUN,
            run.started_at,
            len(run.steps),
            list(run.ready),
        )

    async def tasks_expanded(self, run_id: str, step_id: str, count: int) -> None:
        if count > 1:
            await self._write(run_id, pg_queries.EXPAND_TASKS, step_id, count)

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
        attempt, started_at = self._start_marks.pop((run_id, key), (None, None))
        task = (
            key.step_id,
            key.task_index,
            status.value,
            _json(outputs),
            _json(error.as_dict() if error else None),
            at,
            attempt,
            started_at,
        )
        if ended is None:
            await self._write(
                run_id, pg_queries.FINISH_TASK, *task, list(released), 1 if step_finished else 0
            )
        else:
            run_error = ended.error.as_dict() if ended.error else None
            await self._write(
                run_id,
                pg_queries.FINISH_TASK_AND_RUN,
                *task,
                ended.status.value,
                _json(ended.outputs),
                _json(run_error),
            )

    async def _write_starts(self, due: list[tuple[str, TaskKey]]) -> None:
        """All in the next group commit."""
        await asyncio.gather(*(self._write_start_mark(run_id, key) for run_id, key in due))

    async def _write_start(self, run_id: str, key: TaskKey) -> None:
        mark = self._start_marks.pop((run_id, key), None)
        if mark is not None:  # else the task already finished and took its mark along
            attempt, at = mark
            await self._write(
                run_id, pg_queries.START_TASK, key.step_id, key.task_index, attempt, at
            )

    async def aclose(self) -> None:
        """Stop writing start marks, then let the writes already queued commit."""
        await super().aclose()
        if self._committer is not None:
            await asyncio.shield(self._committer)

    async def _write(self, run_id: str, sql: str, *args: Any) -> None:
        """Queue a lease-checked statement for the next group commit and wait for it."""
        if await self._submit(sql, run_id, self.owner, utcnow(), *args) is not True:
            raise LeaseLostError(f"run {run_id}: this worker no longer holds its lease")

    async def _submit(self, sql: str, *args: Any) -> Any:
        """Queue the statement (the run's id first) for the next group commit; its answer."""
        write = _Write(sql, args)
        self._pending.append(write)
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_pending(), name="group-commit")
        return await asyncio.shield(write.done)

    async def _commit_pending(self) -> None:
        """Commit the queued writes, batch after batch, until none is left."""
        batch: list[_Write] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    answers = await self._commit(batch)
                except Exception as error:
                    if len(batch) > 1 and not is_passing_failure(error):
                        # One refused statement must not fail the others: each on its own.
                        for write in batch:
                            await self._commit_alone(write)
                    else:
                        for write in batch:
                            write.done.set_exception(error)
                else:
                    for write, answer in zip(batch, answers, strict=True):
                        write.done.set_result(answer)
        except asyncio.CancelledError:  # the process is stopping: no writer waits forever
            for write in [*batch, *self._pending]:
                if not write.done.done():
                    write.done.cancel()
            raise
        finally:
            self._committer = None

    async def _commit_alone(self, write: _Write) -> None:
        try:
            (answer,) = await self._commit([write])
        except Exception as error:
            write.done.set_exception(error)
        else:
            write.done.set_result(answer)

    async def _commit(self, batch: list[_Write]) -> list[Any]:
        """One transaction for the batch; each write's answer (a lease-checked write's: whether
        it held its lease and was applied)."""
        async with self.engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            self.commits += 1
            if len(batch) == 1:
                return [await raw.fetchval(batch[0].sql, *batch[0].args)]
            # Only the lease holder writes a run, and every other writer locks a single run or
            # skips locked rows (claims, lease renewal): this transaction never waits in a
            # cycle. Runs go in id order all the same.
            by_sql: dict[str, list[int]] = defaultdict(list)
            for position in sorted(range(len(batch)), key=lambda i: batch[i].args[0]):
                by_sql[batch[position].sql].append(position)
            answers: list[Any] = [None] * len(batch)
            async with raw.transaction():
                for sql, positions in by_sql.items():
                    rows = await raw.fetchmany(sql, [batch[i].args for i in positions])
                    for position, row in zip(positions, rows, strict=True):
                        answers[position] = row[0]
            return answers

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        """A read, in autocommit: one round trip."""
        async with self.engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            return await raw.fetchrow(sql, *args)


def _json(value: Any) -> str | None:
    """Plain JSON data (the engine and the service checked it: app.storable) as JSON text."""
    return None if value is None else json.dumps(value, check_circular=False)

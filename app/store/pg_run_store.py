"""`PgRunStore`: the SQL run store with PostgreSQL's one-statement hot path.

The transitions every step goes through (a fresh run's start, a task's finish, the finish that
ends a run) each run as one statement of `pg_queries.py` on the pool's asyncpg connection, in
autocommit: one round trip and one commit instead of a BEGIN, several statements and a COMMIT.
The rarer transitions (resumed runs, fan-out expansion, retries, cancellation) keep the
portable SQLAlchemy statements of `SqlRunStore`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from app.engine.store import NewRun, RunEnd, TaskKey, TaskStatus
from app.errors import RunError
from app.store import pg_queries
from app.store.run_store import SqlRunStore
from app.store.types import json_default


class PgRunStore(SqlRunStore):
    async def run_started(self, run: NewRun) -> None:
        if not run.fresh:
            await super().run_started(run)
            return
        await self._execute(
            pg_queries.START_FRESH_RUN, run.run_id, run.started_at, len(run.steps), list(run.ready)
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
        attempt, started_at = self._start_marks.pop((run_id, key), (None, None))
        task = (
            run_id,
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
            await self._execute(
                pg_queries.FINISH_TASK, *task, list(released), 1 if step_finished else 0
            )
        else:
            run_error = ended.error.as_dict() if ended.error else None
            await self._execute(
                pg_queries.FINISH_TASK_AND_RUN,
                *task,
                ended.status.value,
                _json(ended.outputs),
                _json(run_error),
            )

    async def _execute(self, sql: str, *args: Any) -> None:
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.execute(sql, *args)  # type: ignore[union-attr]


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=json_default)

"""PostgreSQL's run store: runs created in one statement, and group commits that keep
statements independent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import InstrumentedAttribute

from app.engine.store import RunStatus
from app.store.models import FlowRunRow, TaskRunRow
from app.store.pg_run_store import PgRunStore
from app.store.records import NewRunRow
from tests.databases import fresh_store_database, migrate_to_head, store_engine
from tests.store.samples import T0, add_definition


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with fresh_store_database("postgresql", tmp_path) as url:
        await migrate_to_head(url)
        async with store_engine(url) as opened:
            yield opened


def new_run(run_id: str, definition_id: int, key: str | None = None) -> NewRunRow:
    return NewRunRow(
        run_id, "f", definition_id, RunStatus.RUNNING, {"n": 1}, ["a", "b"], key, T0, "w1", T0
    )


async def count(engine: AsyncEngine, column: InstrumentedAttribute[Any]) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count(column)))).scalar_one())


async def test_a_run_is_created_with_a_pending_task_per_step_in_order(engine: AsyncEngine) -> None:
    store = PgRunStore(engine, "w1")
    definition_id = await add_definition(engine)

    assert await store.create_run(new_run("r1", definition_id))

    async with engine.connect() as connection:
        tasks = (
            await connection.execute(
                select(TaskRunRow.step_id, TaskRunRow.status).order_by(TaskRunRow.id)
            )
        ).all()
    assert [tuple(task) for task in tasks] == [("a", "pending"), ("b", "pending")]


async def test_a_taken_idempotency_key_creates_nothing(engine: AsyncEngine) -> None:
    store = PgRunStore(engine, "w1")
    definition_id = await add_definition(engine)
    assert await store.create_run(new_run("r1", definition_id, key="k"))

    assert not await store.create_run(new_run("r2", definition_id, key="k"))

    assert await count(engine, FlowRunRow.id) == 1
    assert await count(engine, TaskRunRow.id) == 2


async def test_a_refused_statement_does_not_fail_the_others_of_its_group_commit(
    engine: AsyncEngine,
) -> None:
    store = PgRunStore(engine, "w1")
    definition_id = await add_definition(engine)

    answers = await asyncio.gather(  # submitted together: one group commit
        store.create_run(new_run("good", definition_id)),
        store.create_run(new_run("orphan", definition_id + 1000)),  # no such definition
        return_exceptions=True,
    )

    assert store.commits == 3  # the group commit failed; then each statement on its own
    assert answers[0] is True
    assert isinstance(answers[1], asyncpg.ForeignKeyViolationError)
    assert await count(engine, FlowRunRow.id) == 1
    assert await count(engine, TaskRunRow.id) == 2

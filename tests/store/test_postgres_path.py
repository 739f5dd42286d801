"""PostgreSQL's fast path: group commits that keep statements independent. What every store
does (runs created, keys taken, stale versions) is in the contract suite
(tests/store/contract/)."""

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

from app.domain.records import Creation, NewRunRow
from app.domain.runs import RunStatus
from app.store.models import FlowRunRow, TaskRunRow
from app.store.run_store import SqlRunStore
from tests.databases import fresh_store_database, migrate_to_head, store_engine
from tests.store.samples import T0, add_definition, owner_of


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with fresh_store_database("postgresql", tmp_path) as url:
        await migrate_to_head(url)
        async with store_engine(url) as opened:
            yield opened


def new_run(run_id: str, definition_id: int, key: str | None = None) -> NewRunRow:
    return NewRunRow(
        run_id,
        "f",
        definition_id,
        RunStatus.RUNNING,
        {"n": 1},
        ["a", "b"],
        key,
        T0,
        "w1",
        T0,
        created_by=owner_of("f"),
    )


async def count(engine: AsyncEngine, column: InstrumentedAttribute[Any]) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count(column)))).scalar_one())


async def test_a_refused_statement_does_not_fail_the_others_of_its_group_commit(
    engine: AsyncEngine,
) -> None:
    store = SqlRunStore(engine, "w1")
    definition_id = await add_definition(engine)

    answers = await asyncio.gather(  # submitted together: one group commit
        store.create(new_run("good", definition_id)),
        store.create(new_run("twin", definition_id)),
        store.create(new_run("twin", definition_id)),  # the same primary key again
        return_exceptions=True,
    )

    assert store.fast is not None
    assert store.fast.commits == 4  # the group commit failed; then each statement on its own
    assert answers[0] is Creation.CREATED
    assert answers[1] is Creation.CREATED
    assert isinstance(answers[2], asyncpg.UniqueViolationError)
    assert await count(engine, FlowRunRow.id) == 2
    assert await count(engine, TaskRunRow.id) == 4

"""SQLite's fast path: group commits run whole on the connection's thread, writes that stay
independent within a batch, and rows identical to the portable path's. What every store does
(runs created, keys taken, stale versions, leases) is in the contract suite
(tests/store/contract/), which runs the fast path on SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.clock import utcnow
from app.domain.concurrency import RunConcurrency
from app.domain.records import AttemptLog, Creation, LogLine, NewRunRow
from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus
from app.engine.store import NewRun, RunEnd, TaskFinish
from app.errors import LeaseLostError
from app.store import run_store, sqlite
from app.store.run_store import SqlRunStore
from app.store.sqlite import SqliteEncoder, SqlitePath
from app.store.types import UTCDateTime
from tests import polling
from tests.databases import migrate_to_head, store_engine
from tests.store.progress_cases import PROGRESS, STEPS, created_both_ways
from tests.store.samples import add_definition, owner_of, pure_finish

LEASE = timedelta(seconds=60)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with migrated_sqlite(tmp_path / "store.db") as opened:
        yield opened


@asynccontextmanager
async def migrated_sqlite(database: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{database}"
    await migrate_to_head(url)
    async with store_engine(url) as engine:
        yield engine


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The store's clock, stopped: both paths write the same times."""
    now = datetime.now(UTC).replace(microsecond=0)
    for module in (run_store, sqlite):
        monkeypatch.setattr(module, "utcnow", lambda: now)
    return now


def new_run(
    run_id: str,
    definition_id: int,
    *,
    owner: str | None = "w1",
    steps: tuple[str, ...] = ("a", "b"),
    now: datetime | None = None,
    **changes: Any,
) -> NewRunRow:
    """A run to create: running under `owner`'s lease from `now`, or queued."""
    now = now or datetime.now(UTC)
    run = NewRunRow(
        run_id,
        "f",
        definition_id,
        RunStatus.RUNNING if owner else RunStatus.QUEUED,
        {"n": 1},
        list(steps),
        None,
        now,
        owner,
        now + LEASE if owner else None,
        created_by=owner_of("f"),
    )
    return replace(run, **changes)


def fast_path(store: SqlRunStore) -> SqlitePath:
    assert isinstance(store.fast, SqlitePath)
    return store.fast


def rows(engine: AsyncEngine, table: str) -> list[tuple[Any, ...]]:
    """The table's rows as SQLite stores them (JSON text, timestamps as text), in order."""
    database = engine.url.database
    assert database is not None
    with closing(sqlite3.connect(database)) as connection:
        return connection.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()


def _is_running(engine: AsyncEngine, run_id: str, step_id: str, index: int) -> bool:
    return task_status(engine, run_id, step_id, index) == "running"


def task_status(engine: AsyncEngine, run_id: str, step_id: str, index: int = 0) -> str:
    found = [
        row
        for row in rows(engine, "task_runs")
        if row[1] == run_id and row[2] == step_id and row[3] == index
    ]
    return str(found[0][4])


async def test_writes_submitted_together_commit_in_one_transaction(engine: AsyncEngine) -> None:
    store = SqlRunStore(engine, "w1")
    definition_id = await add_definition(engine)

    answers = await asyncio.gather(
        *(store.create(new_run(f"r{index}", definition_id)) for index in range(8))
    )

    assert answers == [Creation.CREATED] * 8
    assert fast_path(store).commits == 1  # the first write's commit took them all
    assert len(rows(engine, "flow_runs")) == 8
    assert len(rows(engine, "task_runs")) == 16

    started = [
        store.run_started(NewRun(f"r{index}", "f", {}, ["a", "b"], ["a"], utcnow()))
        for index in range(8)
    ]
    await asyncio.gather(*started)
    for index in range(8):  # a new run's start may be committed later than it answers
        await store.committed(f"r{index}")

    assert fast_path(store).commits == 2
    assert [row[4] for row in rows(engine, "task_runs")] == ["queued", "pending"] * 8


async def test_a_run_created_later_is_one_commit_with_its_chain_of_pure_steps(
    engine: AsyncEngine,
) -> None:
    store = SqlRunStore(engine, "w1")
    creation = store.create_later(new_run("r1", await add_definition(engine)))
    assert creation is not None

    await store.run_started(NewRun("r1", "f", {}, ["a", "b"], ["a"], utcnow()))
    await store.task_finished("r1", pure_finish("a", released=("b",)))
    ended = RunEnd(RunStatus.COMPLETED, {"b": 1}, None, utcnow())
    await store.task_finished("r1", pure_finish("b", end=ended))

    assert await creation is Creation.CREATED
    assert fast_path(store).commits == 1
    assert [row[4] for row in rows(engine, "task_runs")] == ["completed", "completed"]


@pytest.mark.parametrize("case", [case for case, (ready, _) in PROGRESS.items() if ready])
async def test_a_run_created_with_its_progress_is_written_as_created_then_progressed(
    engine: AsyncEngine, case: str
) -> None:
    """A run created later and started in the same batch is one write (`SqlitePath`); its
    rows must be those of its creation, then its progress one transition at a time."""
    store = SqlRunStore(engine, "w1")
    created = new_run("merged", await add_definition(engine), steps=tuple(STEPS))

    merged, one_by_one = await created_both_ways(store, engine, created, case)

    assert merged == one_by_one


async def test_a_refused_write_does_not_fail_the_others_of_its_batch(engine: AsyncEngine) -> None:
    store = SqlRunStore(engine, "w1")
    definition_id = await add_definition(engine)

    answers = await asyncio.gather(
        store.create(new_run("good", definition_id)),
        store.create(new_run("twin", definition_id)),
        store.create(new_run("twin", definition_id)),  # the same primary key again
        store.create(new_run("after", definition_id)),
        return_exceptions=True,
    )

    assert answers[0] is Creation.CREATED
    assert answers[1] is Creation.CREATED
    assert isinstance(answers[2], sqlite3.IntegrityError)
    assert answers[3] is Creation.CREATED
    assert fast_path(store).commits == 5  # the batch undone, then each write on its own
    assert [row[0] for row in rows(engine, "flow_runs")] == ["good", "twin", "after"]
    assert len(rows(engine, "task_runs")) == 6  # the refused run's tasks undone with it


async def test_a_write_without_the_lease_raises_and_writes_nothing(engine: AsyncEngine) -> None:
    mine, theirs = SqlRunStore(engine, "w1"), SqlRunStore(engine, "w2")
    definition_id = await add_definition(engine)
    await mine.create(new_run("held", definition_id))
    await theirs.create(new_run("taken", definition_id, owner="w2"))
    before = rows(engine, "task_runs")

    finished = TaskFinish(
        TaskKey("a"), TaskStatus.COMPLETED, {"x": 1}, None, utcnow(), released=["b"]
    )
    answers = await asyncio.gather(  # one batch: the refused write and one that holds its lease
        mine.task_finished("taken", finished),
        mine.run_started(NewRun("held", "f", {}, ["a", "b"], ["a"], utcnow())),
        return_exceptions=True,
    )

    assert isinstance(answers[0], LeaseLostError)
    assert answers[1] is None
    await mine.committed("held")  # its start went with the refused write's batch
    after = rows(engine, "task_runs")
    assert [row for row in after if row[1] == "taken"] == [
        row for row in before if row[1] == "taken"
    ]
    assert task_status(engine, "held", "a") == "queued"


async def test_watchers_hear_of_a_watched_run_once_its_batch_commits(engine: AsyncEngine) -> None:
    store = SqlRunStore(engine, "w1")
    heard: list[str] = []
    store.on_events(heard.append)
    definition_id = await add_definition(engine)
    await store.create(new_run("watched", definition_id))
    await store.create(new_run("alone", definition_id))
    await store.watch("watched")

    await asyncio.gather(
        store.run_started(NewRun("watched", "f", {}, ["a", "b"], ["a"], utcnow())),
        store.run_started(NewRun("alone", "f", {}, ["a", "b"], ["a"], utcnow())),
    )
    await store.committed("watched")  # a new run's start may be committed later
    await store.committed("alone")

    assert heard == ["watched"]
    events = [row for row in rows(engine, "run_events") if row[1] == "watched"]
    assert [(row[3], row[4]) for row in events] == [("queued", "a")]


async def test_a_fan_out_of_thousands_expands_in_index_order(engine: AsyncEngine) -> None:
    store = SqlRunStore(engine, "w1")
    definition_id = await add_definition(engine)
    await store.create(new_run("r", definition_id))
    await store.watch("r")

    await store.tasks_expanded("r", "a", 5000)

    elements = [(row[2], row[3], row[4]) for row in rows(engine, "task_runs")][2:]
    assert elements == [("a", index, "queued") for index in range(1, 5000)]
    queued = [(row[4], row[5]) for row in rows(engine, "run_events")]
    assert queued == [("a", index) for index in range(1, 5000)]


async def scenario(
    store: SqlRunStore, other: SqlRunStore, definition_id: int, now: datetime
) -> None:
    """Every transition of the fast path, as the engine and the service make them."""
    newer = await add_definition(store.engine, version=2)
    # Creations: with a key, a key taken, a concurrency key, stale, queued.
    keyed = new_run("r", definition_id, steps=("a", "b", "c"), now=now, idempotency_key="k")
    assert await store.create(keyed) is Creation.CREATED
    assert await store.create(replace(keyed, run_id="again")) is Creation.KEY_TAKEN
    limited = RunConcurrency("tenant", 2)
    queued = new_run("q", newer, owner=None, now=now, concurrency=limited, priority=3)
    assert await store.create(queued) is Creation.CREATED
    stale = new_run("s", definition_id, now=now, latest_only=True)
    assert await store.create(stale) is Creation.STALE
    await store.watch("r")
    # A start, a fan-out and its elements, a long task's start mark written on its own.
    await store.run_started(NewRun("r", "f", {}, ["a", "b", "c"], ["a"], now))
    await store.tasks_expanded("r", "a", 3)
    await store.task_started("r", TaskKey("a", 0), 1, now)
    done = {"v": [1, "two", None]}
    await store.task_finished(
        "r", TaskFinish(TaskKey("a", 0), TaskStatus.COMPLETED, done, None, now, step_finished=False)
    )
    await store.task_started("r", TaskKey("a", 1), 2, now - timedelta(seconds=5))
    await polling.until(lambda: _is_running(store.engine, "r", "a", 1))
    log = AttemptLog(1, (LogLine(now, "info", "hello"),), truncated=False)
    await store.task_finished(
        "r",
        TaskFinish(
            TaskKey("a", 1), TaskStatus.COMPLETED, None, None, now, step_finished=False, log=log
        ),
    )
    await store.task_started("r", TaskKey("a", 2), 1, now)
    await store.task_finished(
        "r", TaskFinish(TaskKey("a", 2), TaskStatus.COMPLETED, {}, None, now, released=["b"])
    )
    # Another worker's write is refused and writes nothing.
    with pytest.raises(LeaseLostError):
        await other.task_finished(
            "r", TaskFinish(TaskKey("b"), TaskStatus.COMPLETED, {}, None, now)
        )
    # A child run (the portable creation) whose end wakes its parent's row.
    child = new_run("child", definition_id, now=now, parent_run_id="r", parent_step_id="b", depth=1)
    assert await store.create(child) is Creation.CREATED
    await store.run_started(NewRun("child", "f", {}, ["a", "b"], ["a"], now))
    ended = RunEnd(RunStatus.COMPLETED, {"out": 1}, None, now)
    await store.task_finished(
        "child", TaskFinish(TaskKey("a"), TaskStatus.COMPLETED, {}, None, now, ended=ended)
    )
    # A failed step that fails the run: its pending step cancelled.
    error = RunError("b", "StepFailed", "b failed")
    await store.task_started("r", TaskKey("b"), 1, now)
    await store.task_finished(
        "r",
        TaskFinish(
            TaskKey("b"),
            TaskStatus.FAILED,
            None,
            error,
            now,
            ended=RunEnd(RunStatus.FAILED, None, error, now),
        ),
    )


async def test_the_fast_path_writes_what_the_portable_path_writes(
    tmp_path: Path, frozen: datetime
) -> None:
    written: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for path in ("fast", "portable"):
        async with migrated_sqlite(tmp_path / f"{path}.db") as engine:
            store, other = SqlRunStore(engine, "w1"), SqlRunStore(engine, "w2")
            if path == "portable":
                store.fast = other.fast = None
            else:
                assert isinstance(store.fast, SqlitePath)
            definition_id = await add_definition(engine)
            try:
                await scenario(store, other, definition_id, frozen)
            finally:
                await store.aclose()
                await other.aclose()
            if path == "fast":
                # each write but the child run's creation, the runs' starts going with their next
                assert fast_path(store).commits == 11
                assert fast_path(other).commits == 1
            tables = ("flow_runs", "task_runs", "run_events", "task_logs", "concurrency_keys")
            written[path] = {table: rows(engine, table) for table in tables}

    for table, portable in written["portable"].items():
        for fast_row, portable_row in zip(written["fast"][table], portable, strict=True):
            assert fast_row == portable_row, table
    assert len(written["fast"]["run_events"]) > 10


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: written all the same
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5))),
        datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ],
)
def test_times_are_encoded_as_sqlalchemy_encodes_them(moment: datetime) -> None:
    dialect = sqlite_dialect()
    by_sqlalchemy = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert by_sqlalchemy is not None

    assert SqliteEncoder(dialect).time(moment) == by_sqlalchemy(moment)

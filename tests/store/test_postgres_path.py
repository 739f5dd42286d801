"""PostgreSQL's fast path: group commits that keep statements independent. What every store
does (runs created, keys taken, stale versions) is in the contract suite
(tests/store/contract/)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import InstrumentedAttribute

from app.domain.clock import utcnow
from app.domain.records import Creation, NewRunRow
from app.domain.runs import RunStatus, TaskStatus
from app.engine.store import NewRun, RunEnd
from app.errors import LeaseLostError
from app.store.models import FlowRunRow, TaskRunRow
from app.store.notifications import RUNS_QUEUED
from app.store.queries import queue, tasks
from app.store.run_store import SqlRunStore
from tests import polling
from tests.databases import fresh_store_database, migrate_to_head, store_engine
from tests.store.progress_cases import (
    PROGRESS,
    STEPS,
    apply_progress,
    created_both_ways,
    rows_of,
)
from tests.store.samples import T0, add_definition, owner_of, pure_finish


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with fresh_store_database("postgresql", tmp_path) as url:
        await migrate_to_head(url)
        async with store_engine(url) as opened:
            yield opened


StoreOf = Callable[[str], SqlRunStore]


@pytest.fixture
async def store_of(engine: AsyncEngine) -> AsyncIterator[StoreOf]:
    """The run store of a worker on `engine`, closed after the test (its group commit keeps
    a connection)."""
    opened: list[SqlRunStore] = []

    def open_store(owner: str) -> SqlRunStore:
        opened.append(SqlRunStore(engine, owner))
        return opened[-1]

    yield open_store
    for store in opened:
        await store.aclose()


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
    store_of: StoreOf,
) -> None:
    store = store_of("w1")
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


async def test_queued_runs_created_together_are_one_commit_and_one_notification(
    engine: AsyncEngine,
    store_of: StoreOf,
) -> None:
    store = store_of("api")
    definition_id = await add_definition(engine)
    heard: list[str] = []
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    listener = await asyncpg.connect(dsn)
    await listener.add_listener(RUNS_QUEUED, lambda *message: heard.append(message[2]))
    try:
        queued = [
            replace(
                new_run(f"q{index}", definition_id),
                status=RunStatus.QUEUED,
                lease_owner=None,
                lease_expires_at=None,
            )
            for index in range(5)
        ]
        answers = await asyncio.gather(*(store.create(run) for run in queued))

        assert answers == [Creation.CREATED] * 5
        assert store.fast is not None
        assert store.fast.commits == 1  # submitted together: one group commit
        await polling.until(lambda: len(heard) == 1)  # one per commit, not one per run
        assert await count(engine, FlowRunRow.id) == 5
    finally:
        await listener.close()


def leased_run(run_id: str, definition_id: int) -> NewRunRow:
    """A run created running under w1's lease, as `/execute` creates one."""
    return replace(new_run(run_id, definition_id), lease_expires_at=utcnow() + timedelta(minutes=5))


async def test_a_run_created_later_is_one_commit_with_its_chain_of_pure_steps(
    engine: AsyncEngine,
    store_of: StoreOf,
) -> None:
    store = store_of("w1")
    assert store.fast is not None
    creation = store.create_later(leased_run("r1", await add_definition(engine)))
    assert creation is not None

    await store.run_started(NewRun("r1", "f", {"n": 1}, ["a", "b"], ["a"], utcnow()))
    await store.task_finished("r1", pure_finish("a", released=("b",)))
    ended = RunEnd(RunStatus.COMPLETED, {"b": 1}, None, utcnow())
    await store.task_finished("r1", pure_finish("b", end=ended))

    assert await creation is Creation.CREATED
    assert store.fast.commits == 1
    run = await store.get("r1")
    assert run is not None
    assert (run.status, run.outputs) == (RunStatus.COMPLETED, {"b": 1})


async def test_a_chain_of_pure_steps_is_one_commit_applied_in_order(
    engine: AsyncEngine, store_of: StoreOf
) -> None:
    store = store_of("w1")
    assert store.fast is not None
    await store.create(leased_run("r1", await add_definition(engine)))
    commits = store.fast.commits
    started = NewRun("r1", "f", {"n": 1}, ["a", "b"], ["a"], utcnow())

    # Neither the start nor `a` waits for its commit: they go with the run's end, in order.
    await store.run_started(started)
    await store.task_finished("r1", pure_finish("a", released=("b",)))
    ended = RunEnd(RunStatus.COMPLETED, {"b": 1}, None, utcnow())
    await store.task_finished("r1", pure_finish("b", end=ended))

    assert store.fast.commits - commits == 1
    run = await store.get("r1")
    assert run is not None
    assert run.status is RunStatus.COMPLETED
    assert [(task.step_id, task.status) for task in run.steps] == [
        ("a", TaskStatus.COMPLETED),
        ("b", TaskStatus.COMPLETED),
    ]


async def test_a_refused_write_nobody_waited_for_raises_when_the_run_is_committed(
    engine: AsyncEngine,
    store_of: StoreOf,
) -> None:
    store, other = store_of("w1"), store_of("w2")
    await store.create(leased_run("r1", await add_definition(engine)))
    await other.run_started(NewRun("r1", "f", {"n": 1}, ["a", "b"], ["a"], utcnow()))

    await other.task_finished("r1", pure_finish("a", released=("b",)))  # w1 holds the lease

    with pytest.raises(LeaseLostError):
        await other.committed("r1")
    run = await store.get("r1")
    assert run is not None
    assert [task.status for task in run.steps] == [TaskStatus.PENDING, TaskStatus.PENDING]


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """A plan's nodes, depth first (EXPLAIN's JSON form)."""
    return [plan, *(node for child in plan.get("Plans", ()) for node in plan_nodes(child))]


FINISHES = {  # $12 and on after the task's own eleven; see queries/tasks.py
    "a step's finish": (tasks.PG_FINISH_TASK, (["b"], 1, None, None, None)),
    "the finish that ends the run": (
        tasks.PG_FINISH_TASK_AND_RUN,
        ("completed", '{"b": 1}', None, None, None, None),
    ),
}


async def queue_runs(store: SqlRunStore, definition_id: int, count: int) -> None:
    """`count` queued runs, created at once, as a new database's first minute may see."""
    queued = RunStatus.QUEUED
    waiting = [
        replace(new_run(f"q{n:03}", definition_id), status=queued, lease_owner=None)
        for n in range(count)
    ]
    await asyncio.gather(*(store.create(run) for run in waiting))


@pytest.mark.parametrize("case", FINISHES)
async def test_a_finish_reads_only_its_own_run_however_many_runs_wait(
    engine: AsyncEngine, store_of: StoreOf, case: str
) -> None:
    """The planner, with a new database's stale statistics, must not walk the queue's rows
    (by a status index) to find the run's own."""
    store = store_of("w1")
    definition_id = await add_definition(engine)
    await queue_runs(store, definition_id, 300)
    await store.create(leased_run("r1", definition_id))
    await store.run_started(NewRun("r1", "f", {"n": 1}, ["a", "b"], ["a"], utcnow()))
    await store.committed("r1")
    sql, rest = FINISHES[case]
    now = utcnow()
    arguments = ("r1", "w1", now, "a", 0, "completed", '{"a": 1}', None, now, None, None, *rest)

    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        undone = raw.transaction()  # EXPLAIN ANALYZE writes
        await undone.start()
        try:
            explained = await raw.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *arguments)
        finally:
            await undone.rollback()

    nodes = plan_nodes(explained[0]["Plan"])  # the pool decodes JSON
    tables_read = {  # by a scan: writes (their events, a log) are nodes too
        (node["Relation Name"], node.get("Index Name"))
        for node in nodes
        if node["Node Type"].endswith("Scan") and "Relation Name" in node
    }
    assert tables_read == {
        ("flow_runs", "pk_flow_runs"),
        ("task_runs", "uq_task_runs_run_id_step_id_task_index"),
    }
    assert sum(node.get("Rows Removed by Filter", 0) for node in nodes) <= 1


async def task_pages_read_on_the_generic_plan(engine: AsyncEngine, sql: str, arguments: str) -> int:
    """The `task_runs` pages a statement reads on PostgreSQL's cached generic plan (the one a
    pool connection runs it on after a few calls, the parameters unknown to the planner),
    its writes undone. An index walk's entries are not rows: its pages tell."""
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.execute("SET plan_cache_mode = force_generic_plan")
        await raw.execute(f"PREPARE measured AS {sql}")
        undone = raw.transaction()
        await undone.start()
        try:
            explained = await raw.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE measured({arguments})"
            )
        finally:
            await undone.rollback()
            await raw.execute("DEALLOCATE measured; RESET plan_cache_mode")
    return sum(
        node["Shared Hit Blocks"] + node["Shared Read Blocks"]
        for node in plan_nodes(explained[0]["Plan"])
        if node["Node Type"].endswith("Scan") and node.get("Relation Name") == "task_runs"
    )


async def test_an_elements_finish_reads_only_its_own_task_however_wide_the_fan_out(
    engine: AsyncEngine,
    store_of: StoreOf,
) -> None:
    """As a pool connection runs it after a few calls: PostgreSQL's cached generic plan,
    the parameters unknown to the planner. It once walked every element of the run's
    fan-outs at each element's finish (the released steps' lookup), whose cost grew with the
    fan-out's width."""
    store = store_of("w1")
    await store.create(leased_run("r1", await add_definition(engine)))
    await store.run_started(NewRun("r1", "f", {"n": 1}, ["a", "b"], ["a"], utcnow()))
    await store.committed("r1")
    await store.tasks_expanded("r1", "a", 2000)
    arguments = (  # element 1500's finish: it releases no step and finishes none
        "'r1', 'w1', now(), 'a', 1500, 'completed', '{\"a\": 1}', NULL, now(), NULL, NULL,"
        " ARRAY[]::text[], 0, NULL, NULL, NULL"
    )

    pages_read = await task_pages_read_on_the_generic_plan(engine, tasks.PG_FINISH_TASK, arguments)
    assert pages_read <= 5  # the element's own row: an index descent, its heap page


@pytest.mark.parametrize("case", PROGRESS)
async def test_a_runs_merged_progress_writes_what_its_statements_one_by_one_write(
    engine: AsyncEngine, store_of: StoreOf, case: str
) -> None:
    """An unwatched run's progress in one batch is one statement (`PG_PROGRESS`); a watched
    run's is written one statement per transition, with its events. The rows must not
    differ."""
    store = store_of("w1")
    definition_id = await add_definition(engine)
    created = replace(leased_run("merged", definition_id), step_ids=STEPS)
    for run_id in ("merged", "one-by-one"):
        await store.create(replace(created, run_id=run_id))
    assert await store.watch("one-by-one") is not None

    for run_id in ("merged", "one-by-one"):
        await apply_progress(store, run_id, case)
        await store.committed(run_id)

    merged, one_by_one = await rows_of(engine, "merged"), await rows_of(engine, "one-by-one")
    assert merged == one_by_one
    assert [task["status"] for task in merged["tasks"]] != ["pending"] * len(STEPS)


@pytest.mark.parametrize("case", [case for case, (ready, _) in PROGRESS.items() if ready])
async def test_a_run_created_with_its_progress_is_written_as_created_then_progressed(
    engine: AsyncEngine, store_of: StoreOf, case: str
) -> None:
    """A run created later and started in the same batch is one statement
    (`PG_CREATE_WITH_PROGRESS`); its rows must be those of its creation, then its progress
    one statement per transition."""
    store = store_of("w1")
    definition_id = await add_definition(engine)
    created = replace(leased_run("merged", definition_id), step_ids=STEPS)

    merged, one_by_one = await created_both_ways(store, engine, created, case)

    assert merged == one_by_one


async def test_a_merged_progress_reads_only_its_own_tasks_however_wide_the_fan_out(
    engine: AsyncEngine,
    store_of: StoreOf,
) -> None:
    """On the generic plan a pool connection caches, with the statistics autovacuum keeps:
    the steps after a 2,000-element fan-out, merged, find their rows by key, not by walking
    the run's tasks. (With a new database's stale statistics they walk the run's entries of
    the unique index, 11 pages here: once per merged progress, never per element.)"""
    store = store_of("w1")
    await store.create(replace(leased_run("r1", await add_definition(engine)), step_ids=STEPS))
    await store.run_started(NewRun("r1", "f", {"n": 1}, STEPS, ["a"], utcnow()))
    await store.committed("r1")
    await store.tasks_expanded("r1", "a", 2000)
    arguments = (  # b and c finish, c releasing d
        "'r1', 'w1', now(), NULL, 0, 2, ARRAY['b', 'c'], ARRAY['completed', 'completed'],"
        " ARRAY['{}', '{}'], ARRAY[NULL, NULL]::text[], ARRAY[now(), now()],"
        " ARRAY[1, 1], ARRAY[now(), now()], ARRAY[NULL, NULL]::timestamptz[],"
        " ARRAY['d'], ARRAY[now()], ARRAY[false], NULL, NULL, NULL, NULL,"
        " ARRAY[]::text[], ARRAY[]::integer[], ARRAY[]::text[], ARRAY[]::boolean[],"
        " ARRAY[]::timestamptz[]"
    )

    async with engine.connect() as connection:
        await connection.exec_driver_sql("ANALYZE task_runs")
        await connection.commit()
    pages_read = await task_pages_read_on_the_generic_plan(engine, tasks.PG_PROGRESS, arguments)
    assert pages_read <= 12  # three rows by key: an index descent and a heap page each


async def test_a_claim_reads_the_queue_by_index_and_takes_runs_by_address(
    engine: AsyncEngine,
    store_of: StoreOf,
) -> None:
    """With a new database's stale statistics, an update of the claimed runs by id took a
    sequential scan of every run."""
    store = store_of("w1")
    await queue_runs(store, await add_definition(engine), 300)
    now = utcnow()

    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        undone = raw.transaction()
        await undone.start()
        try:
            explained = await raw.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {queue.PG_CLAIM}",
                "w1",
                now,
                now + timedelta(minutes=1),
                5,
            )
        finally:
            await undone.rollback()

    runs_read = [
        node
        for node in plan_nodes(explained[0]["Plan"])
        if node["Node Type"].endswith("Scan") and node.get("Relation Name") == "flow_runs"
    ]
    assert {node["Node Type"] for node in runs_read} == {"Index Scan", "Tid Scan"}
    assert sum(node.get("Rows Removed by Filter", 0) for node in runs_read) == 0

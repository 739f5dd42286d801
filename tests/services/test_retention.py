"""The pruner (`services/retention.py`) on each store database: which runs a round deletes
under RUN_RETENTION_DAYS and the flows' `retention:`, in batches, counted in the metrics, by
one process at a time, on a timer in every service process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.runs import RunStatus
from app.services.container import Services
from app.services.observability.metrics import Metrics
from app.services.retention import LOCK_NAME, Pruner, PruneRound
from app.settings import Settings
from app.store.database import create_engine
from app.store.unit_of_work import Store
from tests.polling import until
from tests.store.samples import add_definition, add_run, rows_of_runs

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def pruner(
    store: Store, default_days: int | None = None, batch: int = 100, metrics: Metrics | None = None
) -> Pruner:
    return Pruner(
        store, metrics, default_days=default_days, interval=60, batch=batch, clock=lambda: NOW
    )


async def deleted_by(pruner: Pruner) -> int:
    """How many runs a round of `pruner` deleted (it had the lock: it was alone)."""
    done = await pruner.prune()
    assert done is not None
    return done.deleted


async def runs_left(store: Store, run_ids: list[str]) -> int:
    return (await rows_of_runs(store.engine, run_ids))["flow_runs"]


async def test_run_retention_days_deletes_old_finished_runs_only(store: Store) -> None:
    definition = await add_definition(store.engine)
    old_finished = [
        await add_run(store.engine, definition, status, NOW - 40 * DAY)
        for status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
    ]
    old_in_flight = [
        await add_run(store.engine, definition, status, NOW - 40 * DAY)
        for status in (RunStatus.QUEUED, RunStatus.RUNNING)
    ]
    recent = [await add_run(store.engine, definition, RunStatus.COMPLETED, NOW - 29 * DAY)]

    done = await pruner(store, default_days=30).prune()

    assert done == PruneRound(deleted=3, batches=1)
    assert await rows_of_runs(store.engine, old_finished) == dict.fromkeys(
        ("flow_runs", "task_runs", "task_logs", "run_events"), 0
    )
    assert await runs_left(store, old_in_flight + recent) == 3


async def test_without_any_retention_every_run_is_kept(store: Store) -> None:
    definition = await add_definition(store.engine)
    ancient = [await add_run(store.engine, definition, RunStatus.COMPLETED, NOW - 3650 * DAY)]

    assert await pruner(store, default_days=None).prune() == PruneRound()
    assert await runs_left(store, ancient) == 1


async def test_a_flows_own_days_win_over_run_retention_days(store: Store) -> None:
    long_kept = await add_definition(store.engine, "yearly", 1, {"retention": {"days": 365}})
    short_kept = await add_definition(store.engine, "weekly", 1, {"retention": {"days": 7}})
    plain = await add_definition(store.engine, "plain")
    yearly = await add_run(store.engine, long_kept, RunStatus.COMPLETED, NOW - 40 * DAY, "yearly")
    weekly = await add_run(store.engine, short_kept, RunStatus.COMPLETED, NOW - 8 * DAY, "weekly")
    monthly = await add_run(store.engine, plain, RunStatus.COMPLETED, NOW - 40 * DAY, "plain")
    fresh = await add_run(store.engine, plain, RunStatus.COMPLETED, NOW - 8 * DAY, "plain")

    assert await deleted_by(pruner(store, default_days=30)) == 2

    assert await runs_left(store, [yearly, fresh]) == 2
    assert await runs_left(store, [weekly, monthly]) == 0


async def test_max_runs_keeps_each_flows_newest_finished_runs(store: Store) -> None:
    capped = await add_definition(store.engine, "capped", 1, {"retention": {"max_runs": 3}})
    other = await add_definition(store.engine, "other")
    finished = [
        await add_run(store.engine, capped, RunStatus.COMPLETED, NOW - day * DAY, "capped")
        for day in (6, 5, 4, 3, 2, 1)
    ]
    running = await add_run(store.engine, capped, RunStatus.RUNNING, NOW - 9 * DAY, "capped")
    others = [
        await add_run(store.engine, other, RunStatus.COMPLETED, NOW - day * DAY, "other")
        for day in (6, 5, 4, 3, 2, 1)
    ]

    assert await deleted_by(pruner(store)) == 3

    assert await runs_left(store, finished[:3]) == 0
    assert await runs_left(store, [*finished[3:], running, *others]) == 10


async def test_days_and_max_runs_together_keep_what_both_allow(store: Store) -> None:
    both = await add_definition(store.engine, "both", 1, {"retention": {"days": 10, "max_runs": 2}})
    old = await add_run(store.engine, both, RunStatus.COMPLETED, NOW - 11 * DAY, "both")
    newest = [
        await add_run(store.engine, both, RunStatus.COMPLETED, NOW - day * DAY, "both")
        for day in (3, 2, 1)
    ]

    assert await deleted_by(pruner(store)) == 2  # the old one, and the third newest

    assert await runs_left(store, [old, newest[0]]) == 0
    assert await runs_left(store, newest[1:]) == 2


async def test_the_latest_versions_retention_applies_to_all_the_flows_runs(store: Store) -> None:
    first = await add_definition(store.engine, "f", 1, {"retention": {"days": 365}})
    runs = [
        await add_run(store.engine, first, RunStatus.COMPLETED, NOW - day * DAY)
        for day in (3, 2, 1)
    ]
    await add_definition(store.engine, "f", 2, {"retention": {"max_runs": 1}})

    assert await deleted_by(pruner(store)) == 2

    assert await runs_left(store, runs[2:]) == 1


async def test_a_round_deletes_in_batches_and_counts_them_in_the_metrics(store: Store) -> None:
    definition = await add_definition(store.engine, "f", 1, {"retention": {"days": 1}})
    runs = [
        await add_run(store.engine, definition, RunStatus.COMPLETED, NOW - day * DAY)
        for day in range(2, 7)
    ]
    metrics = Metrics(store, 1.0)
    try:
        done = await pruner(store, batch=2, metrics=metrics).prune()
        scraped = (await metrics.scrape()).body.decode()
    finally:
        metrics.close()

    assert done == PruneRound(deleted=5, batches=3)  # 2 + 2 + 1, one transaction each
    assert await runs_left(store, runs) == 0
    assert 'flow_manager_runs_pruned_total{flow="f"} 5.0' in scraped.splitlines()


async def test_two_concurrent_pruners_delete_each_run_once(migrated_store_url: str) -> None:
    """Two processes (two stores, their own pools) prune one database at once."""
    if not migrated_store_url.startswith(("postgresql", "mysql")):
        pytest.skip("SQLite is one process: one pruner")
    stores = [
        Store(create_engine(Settings(_env_file=None, database_url=migrated_store_url)))
        for _ in range(2)
    ]
    try:
        definition = await add_definition(stores[0].engine, "f", 1, {"retention": {"days": 1}})
        runs = [
            await add_run(stores[0].engine, definition, RunStatus.COMPLETED, NOW - 2 * DAY)
            for _ in range(12)
        ]
        first, second = (pruner(store, batch=2) for store in stores)

        # While one holds the lock, the other skips its round.
        async with stores[0].try_lock(LOCK_NAME):
            assert await second.prune() is None
        assert await runs_left(stores[0], runs) == 12

        rounds = await asyncio.gather(first.prune(), second.prune())

        deleted = [done.deleted for done in rounds if done is not None]
        assert sum(deleted) == 12  # each run once: a skipped round, or one that found none
        assert await runs_left(stores[0], runs) == 0
    finally:
        for store in stores:
            await store.close()


async def test_a_service_process_prunes_on_its_timer(migrated_store_url: str) -> None:
    settings = Settings(
        _env_file=None,
        database_url=migrated_store_url,
        migrate_on_start=False,
        run_retention_days=30,
        retention_interval_seconds=0.05,
        retention_batch=2,
    )
    services = await Services.open(settings)
    try:
        await services.start()
        engine = services.store.engine
        definition = await add_definition(engine)
        old_at = datetime.now(UTC) - 31 * DAY
        old = [await add_run(engine, definition, RunStatus.COMPLETED, old_at) for _ in range(3)]
        kept = [await add_run(engine, definition, RunStatus.RUNNING, old_at)]

        async def pruned() -> bool:
            return await runs_left(services.store, old) == 0

        await until(pruned)
        assert await runs_left(services.store, kept) == 1
        scraped = (await services.metrics.scrape()).body.decode()
        assert 'flow_manager_runs_pruned_total{flow="f"} 3.0' in scraped.splitlines()
    finally:
        await services.close(grace=0)

"""Retention between real worker processes: `python -m app worker` prunes on its timer, and two
of them on one PostgreSQL prune together without a failure (one at a time: the lock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domain.runs import RunStatus
from app.services.container import Services
from tests.polling import until
from tests.store.samples import add_definition, add_run, rows_of_runs
from tests.worker.conftest import Cluster

PRUNE_DEADLINE_SECONDS = 30.0  # two workers' start-up, then a few rounds


async def test_worker_processes_prune_old_finished_runs(
    cluster: Cluster, services: Services
) -> None:
    engine = services.store.engine
    definition = await add_definition(engine, "f", 1, {"retention": {"days": 1}})
    old_at = datetime.now(UTC) - timedelta(days=2)
    old = [await add_run(engine, definition, RunStatus.COMPLETED, old_at) for _ in range(7)]
    recent = [await add_run(engine, definition, RunStatus.FAILED, datetime.now(UTC))]
    for _ in range(2):
        cluster.start_worker(settings={"RETENTION_INTERVAL_SECONDS": "0.2", "RETENTION_BATCH": "3"})

    async def pruned() -> bool:
        return (await rows_of_runs(engine, old))["flow_runs"] == 0

    await until(pruned, PRUNE_DEADLINE_SECONDS, interval=0.1)

    # (Runs in flight are the store's and the service's tests': a worker would run these.)
    assert (await rows_of_runs(engine, recent))["flow_runs"] == 1
    for worker in cluster.workers:
        assert worker.running
        assert "pruning finished runs failed" not in worker.log_text()

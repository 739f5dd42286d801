"""Schedules between real processes: two `python -m app worker` processes on one PostgreSQL
fire an every-second schedule, and each tick starts exactly one run; a stretch of ticks
missed while no process ran starts one run (the latest tick) when they come back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domain.schedules import Overlap
from app.services.container import Services
from app.services.schedules import ScheduleRequest
from tests.callers import admin
from tests.polling import until
from tests.worker.conftest import Cluster

TICK = """
flow: Tick
steps:
  - set: {id: s, values: {at: "now"}}
"""
TICKS_SEEN = 8  # every second: the deadline below leaves room for both workers' start-up
DEADLINE_SECONDS = 60.0
WORKER_SETTINGS = {"SCHEDULE_POLL_SECONDS": "0.5"}


async def runs_per_tick(cluster: Cluster) -> dict[datetime, int]:
    rows = await cluster.connection.fetch(
        "SELECT idempotency_key, count(*) AS runs FROM flow_runs "
        "WHERE flow_name = 'Tick' GROUP BY idempotency_key"
    )
    return {
        datetime.fromisoformat(row["idempotency_key"].split(":", 2)[2]): row["runs"] for row in rows
    }


async def test_two_worker_processes_start_each_tick_of_a_schedule_once(
    cluster: Cluster, services: Services
) -> None:
    await services.flows.register(await admin(services), TICK)
    await services.schedules.create(
        await admin(services),
        "Tick",
        ScheduleRequest(cron="* * * * * *", overlap=Overlap.ALLOW),
    )
    for _ in range(2):
        cluster.start_worker(settings=WORKER_SETTINGS)

    async def enough() -> bool:
        return len(await runs_per_tick(cluster)) >= TICKS_SEEN

    await until(enough, DEADLINE_SECONDS, interval=0.2)

    counted = await runs_per_tick(cluster)
    assert set(counted.values()) == {1}  # no tick started twice
    ticks = sorted(counted)
    assert ticks == [ticks[0] + timedelta(seconds=n) for n in range(len(ticks))]  # none missed
    for worker in cluster.workers:
        assert worker.running
        assert "firing schedules failed" not in worker.log_text()


async def test_ticks_missed_while_no_process_ran_start_one_run_when_one_comes_back(
    cluster: Cluster, services: Services
) -> None:
    await services.flows.register(await admin(services), TICK)
    down_since = datetime.now(UTC) - timedelta(minutes=30)
    services.schedules.clock = lambda: down_since  # made half an hour ago: 30 ticks missed
    made = await services.schedules.create(
        await admin(services), "Tick", ScheduleRequest(cron="* * * * *")
    )

    cluster.start_worker(settings=WORKER_SETTINGS)

    async def caught_up() -> bool:
        return bool(await runs_per_tick(cluster))

    await until(caught_up, DEADLINE_SECONDS, interval=0.1)
    found = await services.schedules.read(await admin(services), made.schedule_id)
    [tick] = await runs_per_tick(cluster)
    assert found.last_fired_at == tick
    assert found.next_fire_at == tick + timedelta(minutes=1)
    assert tick > datetime.now(UTC) - timedelta(minutes=1)  # the latest missed tick

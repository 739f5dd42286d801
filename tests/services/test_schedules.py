"""Schedules on each store database: made, read, changed and deleted as the API asks; each due
tick starts one run (as the schedule's owner, with its inputs), a missed stretch one run (the
latest tick), overlap skip/allow/cancel_previous, declared `schedules:` replaced by the next
version. Time is the test's clock: nothing waits for a real tick."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.access import USER_SCOPES, Caller
from app.domain.runs import RunStatus
from app.domain.schedules import Overlap, ScheduleOrigin, tick_key
from app.errors import (
    DefinitionError,
    InputValidationError,
    QuotaExceededError,
    RequestError,
    UnknownFlowError,
    UnknownScheduleError,
)
from app.services.container import Services
from app.services.scheduler import FireRound, Scheduler
from app.services.schedules import ScheduleChange, ScheduleLimits, ScheduleRequest
from tests.callers import admin

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

TICK = """
flow: Tick
inputs:
  - {name: n, type: integer, default: 0}
steps:
  - set: {id: s, values: {n: "${inputs.n}"}}
outputs: {n: "${s.n}"}
"""


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(services: Services) -> Clock:
    """The test's time, for the schedule service and the schedulers the test makes."""
    found = Clock()
    services.schedules.clock = found
    return found


def scheduler(services: Services, clock: Clock, batch: int = 100) -> Scheduler:
    return Scheduler(
        services.store, services.runs, services.metrics, poll_seconds=1, batch=batch, clock=clock
    )


async def schedule(
    services: Services,
    cron: str = "* * * * *",
    overlap: Overlap = Overlap.ALLOW,
    timezone: str = "UTC",
    **inputs: int,
) -> str:
    await services.flows.register(await admin(services), TICK)
    made = await services.schedules.create(
        await admin(services),
        "Tick",
        ScheduleRequest(cron=cron, timezone=timezone, inputs=inputs, overlap=overlap),
    )
    return made.schedule_id


async def runs_of(services: Services) -> list[tuple[str, RunStatus]]:
    page = await services.runs.list_runs(await admin(services), flow="Tick", limit=100)
    return [(run.run_id, run.status) for run in page.items]


async def test_a_schedule_answers_its_next_fire_times(services: Services, clock: Clock) -> None:
    await services.flows.register(await admin(services), TICK)

    made = await services.schedules.create(
        await admin(services), "Tick", ScheduleRequest(cron="30 2 * * *", timezone="Asia/Tokyo")
    )

    read = await services.schedules.read(await admin(services), made.schedule_id)
    assert read.next_times(3) == [
        datetime(2026, 6, 1, 17, 30, tzinfo=UTC),
        datetime(2026, 6, 2, 17, 30, tzinfo=UTC),
        datetime(2026, 6, 3, 17, 30, tzinfo=UTC),
    ]
    assert (read.overlap, read.enabled, read.origin) == (Overlap.SKIP, True, ScheduleOrigin.API)
    assert read.owner_name == "admin"


@pytest.mark.parametrize(
    ("cron", "timezone", "field"),
    [
        ("61 * * * *", "UTC", "cron"),
        ("* * *", "UTC", "cron"),
        ("* * * * *", "Mars/Base", "timezone"),
    ],
)
async def test_a_bad_cron_or_time_zone_is_refused_at_its_field(
    services: Services, cron: str, timezone: str, field: str
) -> None:
    await services.flows.register(await admin(services), TICK)

    with pytest.raises(RequestError) as refused:
        await services.schedules.create(
            await admin(services), "Tick", ScheduleRequest(cron=cron, timezone=timezone)
        )

    assert refused.value.loc == ("body", field)


async def test_inputs_the_flow_refuses_make_no_schedule(services: Services) -> None:
    await services.flows.register(await admin(services), TICK)

    with pytest.raises(InputValidationError):
        await services.schedules.create(
            await admin(services), "Tick", ScheduleRequest(cron="* * * * *", inputs={"n": "x"})
        )
    assert await services.schedules.list_schedules(await admin(services), "Tick") == []


async def test_a_due_tick_starts_one_run_as_the_owner_with_the_inputs(
    services: Services, clock: Clock
) -> None:
    schedule_id = await schedule(services, n=7)
    clock.now = T0 + MINUTE

    assert await scheduler(services, clock).fire_due() == FireRound(started=1)
    assert await scheduler(services, clock).fire_due() == FireRound()

    [(run_id, _)] = await runs_of(services)
    run = await services.runs.get(run_id)
    assert run.inputs == {"n": 7}
    assert run.created_by == "admin"
    found = await services.schedules.read(await admin(services), schedule_id)
    assert found.last_run_id == run_id
    assert found.last_fired_at == T0 + MINUTE
    assert found.next_fire_at == T0 + 2 * MINUTE


async def test_ticks_missed_while_down_start_one_run_for_the_latest(
    services: Services, clock: Clock
) -> None:
    schedule_id = await schedule(services)
    clock.now = T0 + 10 * MINUTE + timedelta(seconds=30)

    assert await scheduler(services, clock).fire_due() == FireRound(started=1)

    found = await services.schedules.read(await admin(services), schedule_id)
    assert found.last_fired_at == T0 + 10 * MINUTE
    assert found.next_fire_at == T0 + 11 * MINUTE
    [(run_id, _)] = await runs_of(services)
    assert (
        await services.run_store.id_for_key(
            tick_key(schedule_id, T0 + 10 * MINUTE), "Tick", found.created_by
        )
        == run_id
    )


async def test_two_schedulers_racing_start_each_tick_once(services: Services, clock: Clock) -> None:
    ids = [await schedule(services) for _ in range(5)]
    racers = [scheduler(services, clock, batch=2) for _ in range(3)]

    for minute in range(1, 4):
        clock.now = T0 + minute * MINUTE
        rounds = await asyncio.gather(*(racer.fire_due() for racer in racers))
        assert sum(done.started for done in rounds) == len(ids)

    assert len(await runs_of(services)) == 3 * len(ids)


async def test_overlap_skip_starts_nothing_while_the_previous_run_is_active(
    services: Services, clock: Clock
) -> None:
    await schedule(services, overlap=Overlap.SKIP)
    clock.now = T0 + MINUTE
    await scheduler(services, clock).fire_due()
    clock.now = T0 + 2 * MINUTE

    assert await scheduler(services, clock).fire_due() == FireRound(skipped=1)
    assert len(await runs_of(services)) == 1


async def test_overlap_skip_starts_again_once_the_previous_run_ended(
    services: Services, clock: Clock
) -> None:
    await schedule(services, overlap=Overlap.SKIP)
    clock.now = T0 + MINUTE
    await scheduler(services, clock).fire_due()
    [(first, _)] = await runs_of(services)
    await services.runs.cancel(await admin(services), first)
    clock.now = T0 + 2 * MINUTE

    assert await scheduler(services, clock).fire_due() == FireRound(started=1)


async def test_overlap_allow_starts_another_run(services: Services, clock: Clock) -> None:
    await schedule(services, overlap=Overlap.ALLOW)
    for minute in (1, 2):
        clock.now = T0 + minute * MINUTE
        await scheduler(services, clock).fire_due()

    assert [status for _, status in await runs_of(services)] == [RunStatus.QUEUED] * 2


async def test_overlap_cancel_previous_cancels_it_and_starts_another(
    services: Services, clock: Clock
) -> None:
    await schedule(services, overlap=Overlap.CANCEL_PREVIOUS)
    clock.now = T0 + MINUTE
    await scheduler(services, clock).fire_due()
    [(first, _)] = await runs_of(services)
    clock.now = T0 + 2 * MINUTE

    assert await scheduler(services, clock).fire_due() == FireRound(started=1)

    runs = dict(await runs_of(services))
    assert runs.pop(first) is RunStatus.CANCELLED
    assert list(runs.values()) == [RunStatus.QUEUED]


async def test_a_disabled_schedule_starts_nothing_and_enabled_waits_for_its_next_tick(
    services: Services, clock: Clock
) -> None:
    schedule_id = await schedule(services)
    off = await services.schedules.update(
        await admin(services), schedule_id, ScheduleChange(enabled=False)
    )
    clock.now = T0 + 5 * MINUTE + timedelta(seconds=1)

    assert off.next_times() == []
    assert await scheduler(services, clock).fire_due() == FireRound()
    on = await services.schedules.update(
        await admin(services), schedule_id, ScheduleChange(enabled=True, cron="*/10 * * * *")
    )
    assert on.next_fire_at == T0 + 10 * MINUTE
    assert await scheduler(services, clock).fire_due() == FireRound()


async def test_a_tick_whose_inputs_the_new_version_refuses_fails_without_a_run(
    services: Services, clock: Clock
) -> None:
    schedule_id = await schedule(services)
    strict = TICK.replace("default: 0", "required: true")
    await services.flows.register(await admin(services), strict)
    clock.now = T0 + MINUTE

    assert await scheduler(services, clock).fire_due() == FireRound(failed=1)

    found = await services.schedules.read(await admin(services), schedule_id)
    assert "missing required input 'n'" in (found.last_error or "")
    assert found.next_fire_at == T0 + 2 * MINUTE
    assert await runs_of(services) == []


async def test_deleting_a_schedule_stops_it(services: Services, clock: Clock) -> None:
    schedule_id = await schedule(services)
    await services.schedules.delete(await admin(services), schedule_id)
    clock.now = T0 + MINUTE

    assert await scheduler(services, clock).fire_due() == FireRound()
    with pytest.raises(UnknownScheduleError):
        await services.schedules.read(await admin(services), schedule_id)


async def test_a_flow_has_at_most_max_schedules_per_flow(services: Services) -> None:
    services.schedules.limits = ScheduleLimits(max_per_flow=2, min_interval_seconds=1)
    for _ in range(2):
        await schedule(services)

    with pytest.raises(QuotaExceededError, match="MAX_SCHEDULES_PER_FLOW"):
        await schedule(services)


async def test_a_schedule_firing_more_often_than_the_minimum_interval_is_refused(
    services: Services,
) -> None:
    services.schedules.limits = ScheduleLimits(max_per_flow=5, min_interval_seconds=60)

    with pytest.raises(RequestError, match="MIN_SCHEDULE_INTERVAL_SECONDS"):
        await schedule(services, cron="*/10 * * * * *")


async def test_a_caller_who_may_not_see_the_flow_is_told_there_is_no_schedule(
    services: Services,
) -> None:
    schedule_id = await schedule(services)
    user = await services.users.create(await admin(services), "ada")
    ada = Caller(user.id, "ada", is_admin=False, scopes=USER_SCOPES)

    with pytest.raises(UnknownScheduleError):
        await services.schedules.read(ada, schedule_id)
    with pytest.raises(UnknownScheduleError):
        await services.schedules.delete(ada, schedule_id)
    with pytest.raises(UnknownFlowError):
        await services.schedules.list_schedules(ada, "Tick")


DECLARED = (
    TICK
    + """
schedules:
  - {cron: "0 * * * *", inputs: {n: 1}}
  - {cron: "30 2 * * *", timezone: Europe/Paris, overlap: cancel_previous, enabled: false}
"""
)


async def test_a_new_version_replaces_the_declared_schedules_and_keeps_the_apis(
    services: Services, clock: Clock
) -> None:
    made = await schedule(services)
    await services.flows.register(await admin(services), DECLARED)
    declared = [
        (found.cron.expression, found.origin)
        for found in await services.schedules.list_schedules(await admin(services), "Tick")
    ]
    assert declared == [
        ("* * * * *", ScheduleOrigin.API),
        ("0 * * * *", ScheduleOrigin.DEFINITION),
        ("30 2 * * *", ScheduleOrigin.DEFINITION),
    ]

    await services.flows.register(await admin(services), TICK + "\ndescription: again\n")

    [kept] = await services.schedules.list_schedules(await admin(services), "Tick")
    assert kept.schedule_id == made


async def test_declared_schedules_count_toward_the_limit(services: Services) -> None:
    services.flows.schedule_limits = ScheduleLimits(max_per_flow=1, min_interval_seconds=1)

    with pytest.raises(DefinitionError, match="MAX_SCHEDULES_PER_FLOW"):
        await services.flows.register(await admin(services), DECLARED)


async def test_a_declared_schedule_starts_runs_as_who_registered_the_version(
    services: Services, clock: Clock
) -> None:
    await services.flows.register(await admin(services), DECLARED)
    hourly, _ = await services.schedules.list_schedules(await admin(services), "Tick")
    assert hourly.next_fire_at is not None  # from the registration: now, not the test's clock
    clock.now = hourly.next_fire_at

    assert await scheduler(services, clock).fire_due() == FireRound(started=1)

    [(run_id, _)] = await runs_of(services)
    run = await services.runs.get(run_id)
    assert (run.inputs, run.created_by) == ({"n": 1}, "admin")


async def test_the_fall_back_night_starts_one_run_of_a_repeated_local_time(
    services: Services, clock: Clock
) -> None:
    clock.now = datetime(2026, 10, 24, 22, tzinfo=UTC)  # Paris: 03:00 becomes 02:00 at 01:00 UTC
    await schedule(services, cron="30 2 * * *", overlap=Overlap.ALLOW, timezone="Europe/Paris")
    ours = scheduler(services, clock)

    while clock.now < datetime(2026, 10, 25, 3, tzinfo=UTC):
        clock.now += 5 * MINUTE
        await ours.fire_due()

    [(run_id, _)] = await runs_of(services)
    assert (await services.runs.get(run_id)).created_at == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


async def test_ticks_are_counted_in_the_metrics_by_outcome(
    services: Services, clock: Clock
) -> None:
    await schedule(services, overlap=Overlap.SKIP)
    for minute in (1, 2):
        clock.now = T0 + minute * MINUTE
        await scheduler(services, clock).fire_due()

    scraped = (await services.metrics.scrape()).body.decode().splitlines()
    assert 'flow_manager_schedule_ticks_total{flow="Tick",outcome="started"} 1.0' in scraped
    assert 'flow_manager_schedule_ticks_total{flow="Tick",outcome="skipped"} 1.0' in scraped

"""Cron in time zones (`app.domain.schedules.Cron`): 5 fields or 6 with seconds first, the
latest tick of a missed stretch, and daylight saving time as cron does it: a local time a
spring-forward skips runs once just after the gap, one a fall-back repeats runs once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.schedules import Cron, CronError, tick_key

PARIS = "Europe/Paris"


def day_of(cron: Cron, day: datetime) -> list[datetime]:
    """The cron's ticks from `day`'s local midnight to the next (UTC)."""
    start, end = day - timedelta(hours=3), day + timedelta(hours=24)
    ticks, moment = [], start
    while (moment := cron.next_after(moment)) < end:
        ticks.append(moment)
    return ticks


def test_five_fields_tick_per_minute_and_six_fields_per_second_seconds_first() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)

    assert Cron.parse("* * * * *").next_after(start) == start + timedelta(minutes=1)
    assert Cron.parse("15 * * * * *").next_after(start) == start + timedelta(seconds=15)
    assert Cron.parse("*/20 * * * * *").next_times(start, 3) == [
        start + timedelta(seconds=seconds) for seconds in (20, 40, 60)
    ]


def test_the_cron_is_read_in_its_time_zone() -> None:
    start = datetime(2026, 1, 15, tzinfo=UTC)

    assert Cron.parse("0 9 * * *", "America/New_York").next_after(start) == datetime(
        2026, 1, 15, 14, tzinfo=UTC
    )


def test_the_spring_forward_day_runs_a_skipped_local_time_once_after_the_gap() -> None:
    cron = Cron.parse("30 2 * * *", PARIS)

    # 2026-03-29: 02:00 local becomes 03:00; 02:30 does not exist that day.
    assert day_of(cron, datetime(2026, 3, 29, tzinfo=UTC)) == [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, the first instant after the gap
    ]


def test_the_fall_back_day_runs_a_repeated_local_time_once() -> None:
    cron = Cron.parse("30 2 * * *", PARIS)

    # 2026-10-25: 03:00 local becomes 02:00 again; 02:30 happens twice.
    assert day_of(cron, datetime(2026, 10, 25, tzinfo=UTC)) == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, the first 02:30
    ]


def test_an_hourly_schedule_keeps_every_hour_through_the_fall_back() -> None:
    cron = Cron.parse("0 * * * *", PARIS)
    start = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)

    assert cron.next_times(start, 4) == [
        datetime(2026, 10, 25, hour, tzinfo=UTC) for hour in range(4)
    ]


def test_the_latest_tick_at_or_before_a_moment() -> None:
    cron = Cron.parse("*/10 * * * *")
    moment = datetime(2026, 1, 1, 12, 34, 56, tzinfo=UTC)

    assert cron.latest_at_or_before(moment) == datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    assert cron.latest_at_or_before(moment.replace(minute=30, second=0)) == moment.replace(
        minute=30, second=0
    )


@pytest.mark.parametrize(
    ("expression", "timezone", "says"),
    [
        ("* * * *", "UTC", "5 fields"),
        ("* * * * * * *", "UTC", "5 fields"),
        ("@daily", "UTC", "5 fields"),
        ("0 0 31 2 *", "UTC", "not a valid cron"),
        ("* * * * *", "Europe/Nowhere", "IANA"),
        ("* * * * *", "../../etc/passwd", "IANA"),
    ],
)
def test_what_is_not_a_cron_says_why(expression: str, timezone: str, says: str) -> None:
    with pytest.raises(CronError, match=says):
        Cron.parse(expression, timezone)


def test_a_ticks_key_names_the_schedule_and_the_tick_in_utc() -> None:
    tick = datetime(2026, 3, 29, 3, tzinfo=UTC) + timedelta(hours=2)

    assert tick_key("s1", tick) == "schedule:s1:2026-03-29T05:00:00+00:00"

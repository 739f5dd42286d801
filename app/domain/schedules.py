"""Schedules (DESIGN.md section 9, "Schedules"): when a flow is started on its own.

A schedule is a cron expression read in an IANA time zone: 5 fields (minute hour day month
weekday), or 6 with seconds first. croniter does the reading and the arithmetic (its
`second_at_beginning` mode is our 6-field form); zoneinfo the time zones. Everything here is
pure: the flow language validates a definition's `schedules:` with it, the services compute
fire times with it.

Daylight saving time, as cron has always done it, on aware datetimes: a tick whose local time
is skipped by a spring-forward runs at the first instant after the gap (croniter's choice);
a tick whose local time repeats in a fall-back runs once, at its first occurrence, unless
the schedule runs every hour (its hour field is `*`), which keeps running by elapsed time.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

DEFAULT_TIMEZONE = "UTC"
NEXT_FIRE_TIMES = 5  # shown with a schedule
MAX_CRON_CHARS = 200
MAX_TIMEZONE_CHARS = 64
# croniter searches this far for a match: `0 0 30 2 *` (never) is refused, not looped on.
_MAX_YEARS_BETWEEN_MATCHES = 5
SCHEDULE_FIELDS = ("cron", "timezone", "inputs", "overlap", "enabled")
MAX_DECLARED_SCHEDULES = 100  # in one definition (MAX_SCHEDULES_PER_FLOW counts them too)


class Overlap(StrEnum):
    """What a tick does while the schedule's previous run is queued or running."""

    SKIP = "skip"  # start nothing (the default)
    ALLOW = "allow"  # start another run all the same
    CANCEL_PREVIOUS = "cancel_previous"  # cancel the previous run, then start


class ScheduleOrigin(StrEnum):
    API = "api"  # made by POST /flows/{name}/schedules: kept across versions
    DEFINITION = "definition"  # declared by a version's `schedules:`: replaced by the next


class CronError(ValueError):
    """The message says what is wrong with a cron expression or a time zone."""


@dataclass(frozen=True)
class Cron:
    """A validated cron expression in a time zone."""

    expression: str
    timezone: str = DEFAULT_TIMEZONE

    @classmethod
    def parse(cls, expression: str, timezone: str = DEFAULT_TIMEZONE) -> Cron:
        """CronError when the expression or the time zone is not valid."""
        cron = cls(" ".join(expression.split()), timezone)
        cron.zone()
        if len(expression) > MAX_CRON_CHARS:
            raise CronError(f"a cron expression has at most {MAX_CRON_CHARS} characters")
        fields = cron.expression.split(" ")
        if len(fields) not in (5, 6):
            raise CronError(
                "a cron expression has 5 fields (minute hour day month weekday) or 6 with "
                f"seconds first; this one has {len(fields) if cron.expression else 0}"
            )
        try:
            croniter(cron.expression, second_at_beginning=True)
            cron.next_after(datetime(2000, 1, 1, tzinfo=UTC))
        except (CroniterError, ValueError) as error:
            raise CronError(f"not a valid cron expression: {error}") from None
        return cron

    @property
    def has_seconds(self) -> bool:
        return len(self.expression.split(" ")) == 6

    def zone(self) -> ZoneInfo:
        if len(self.timezone) > MAX_TIMEZONE_CHARS or not self.timezone:
            raise CronError(f"{self.timezone!r} is not an IANA time zone name")
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CronError(
                f"{self.timezone!r} is not an IANA time zone name (e.g. 'Europe/Paris', 'UTC')"
            ) from None

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after `moment`, in UTC."""
        ticks = self._iterator(moment)
        while True:
            tick = ticks.get_next(datetime)
            if not self._repeated(tick):
                return tick.astimezone(UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last tick at or before `moment`, in UTC (catch-up's `latest`)."""
        ticks = self._iterator(moment + timedelta(microseconds=1))
        while True:
            tick = ticks.get_prev(datetime)
            if not self._repeated(tick):
                return tick.astimezone(UTC)

    def next_times(self, moment: datetime, count: int = NEXT_FIRE_TIMES) -> list[datetime]:
        times: list[datetime] = []
        for _ in range(count):
            moment = self.next_after(moment)
            times.append(moment)
        return times

    def interval_at_least(self, moment: datetime) -> float:
        """The shortest gap between two of the next few ticks, in seconds (a minimum interval
        is checked with it)."""
        times = self.next_times(moment, 3)
        return min((b - a).total_seconds() for a, b in itertools.pairwise(times))

    def _iterator(self, moment: datetime) -> croniter:
        start = moment.astimezone(self.zone())
        return croniter(
            self.expression,
            start,
            second_at_beginning=True,
            max_years_between_matches=_MAX_YEARS_BETWEEN_MATCHES,
        )

    def _repeated(self, tick: datetime) -> bool:
        """A tick at the second occurrence of a local time a fall-back repeats, of a schedule
        pinned to hours (hour field not `*`): it ran at the first occurrence."""
        local = tick.astimezone(self.zone())
        if local.fold == 0 or local.replace(fold=0).utcoffset() == local.utcoffset():
            return False
        hours = self.expression.split(" ")[2 if self.has_seconds else 1]
        return hours != "*"


@dataclass(frozen=True)
class ScheduleSpec:
    """What a schedule says, as a request or a definition's `schedules:` gives it."""

    cron: Cron
    inputs: Mapping[str, Any] = field(default_factory=dict)
    overlap: Overlap = Overlap.SKIP
    enabled: bool = True


@dataclass(frozen=True)
class ScheduleRecord:
    """A stored schedule."""

    schedule_id: str
    flow: str
    cron: Cron
    inputs: Mapping[str, Any]
    overlap: Overlap
    enabled: bool
    origin: ScheduleOrigin
    created_by: str  # user id: whom its runs are started as
    created_at: datetime
    updated_at: datetime
    next_fire_at: datetime | None  # None while disabled
    last_fired_at: datetime | None = None  # the last tick handled (started, skipped or failed)
    last_run_id: str | None = None
    last_error: str | None = None
    owner_name: str = ""  # the username of created_by, where read with it
    owner_is_admin: bool = False

    def next_times(self, count: int = NEXT_FIRE_TIMES) -> list[datetime]:
        """The next ticks, from the one it waits for (none while disabled)."""
        if self.next_fire_at is None:
            return []
        first = self.next_fire_at
        return [first, *self.cron.next_times(first, count - 1)]


def tick_key(schedule_id: str, tick: datetime) -> str:
    """The idempotency key of the run a tick starts: one run per (schedule, tick)."""
    return f"schedule:{schedule_id}:{tick.astimezone(UTC).isoformat()}"

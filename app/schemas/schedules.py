"""Schedules of a flow (DESIGN.md section 9): requests and answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.domain.schedules import (
    DEFAULT_TIMEZONE,
    MAX_CRON_CHARS,
    MAX_TIMEZONE_CHARS,
    Overlap,
    ScheduleRecord,
)
from app.schemas.common import RequestModel, Timestamp

OverlapName = Literal["skip", "allow", "cancel_previous"]
CRON = (
    "5 fields (minute hour day month weekday) or 6 with seconds first, e.g. `0 9 * * 1-5` "
    "or `*/10 * * * * *`"
)
TIMEZONE = "an IANA time zone the cron is read in (default UTC), e.g. `Europe/Paris`"
OVERLAP = (
    "a tick while the previous run is queued or running: `skip` it (default), `allow` "
    "another run, or `cancel_previous` and start"
)


class ScheduleCreate(RequestModel):
    """A schedule: each tick of `cron` starts a run of the flow with `inputs`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"cron": "0 9 * * 1-5", "timezone": "Europe/Paris", "inputs": {}}]
        }
    )

    cron: str = Field(min_length=1, max_length=MAX_CRON_CHARS, description=CRON)
    timezone: str = Field(
        DEFAULT_TIMEZONE, min_length=1, max_length=MAX_TIMEZONE_CHARS, description=TIMEZONE
    )
    inputs: dict[str, Any] = Field(default_factory=dict, description="the runs' inputs")
    overlap: OverlapName = Field("skip", description=OVERLAP)
    enabled: bool = Field(True, description="false: no tick starts a run until enabled")


class SchedulePatch(RequestModel):
    """Change any field of a schedule; those left out stay as they are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"enabled": False}]})

    cron: str | None = Field(None, min_length=1, max_length=MAX_CRON_CHARS, description=CRON)
    timezone: str | None = Field(
        None, min_length=1, max_length=MAX_TIMEZONE_CHARS, description=TIMEZONE
    )
    inputs: dict[str, Any] | None = Field(None, description="the runs' inputs (all of them)")
    overlap: OverlapName | None = Field(None, description=OVERLAP)
    enabled: bool | None = None


class ScheduleDetail(BaseModel):
    """A schedule, with its next fire times (UTC)."""

    id: str
    flow: str
    cron: str
    timezone: str
    inputs: dict[str, Any]
    overlap: OverlapName
    enabled: bool
    origin: Literal["api", "definition"] = Field(
        description="`definition`: declared by the flow's `schedules:` (replaced by its next "
        "version); `api`: made by POST /flows/{name}/schedules"
    )
    created_by: str = Field(description="whom its runs are started as (a username)")
    created_at: Timestamp
    updated_at: Timestamp
    next_fire_times: list[Timestamp] = Field(description="the next ticks; none while disabled")
    last_fired_at: Timestamp | None = Field(description="the last tick handled")
    last_run_id: str | None = Field(description="the run the last started tick made")
    last_error: str | None = Field(description="why the last tick started no run, if it failed")

    @classmethod
    def of(cls, record: ScheduleRecord) -> ScheduleDetail:
        return cls(
            id=record.schedule_id,
            flow=record.flow,
            cron=record.cron.expression,
            timezone=record.cron.timezone,
            inputs=dict(record.inputs),
            overlap=record.overlap.value,
            enabled=record.enabled,
            origin=record.origin.value,
            created_by=record.owner_name,
            created_at=record.created_at,
            updated_at=record.updated_at,
            next_fire_times=record.next_times(),
            last_fired_at=record.last_fired_at,
            last_run_id=record.last_run_id,
            last_error=record.last_error,
        )


def overlap_of(name: OverlapName | None) -> Overlap | None:
    return None if name is None else Overlap(name)

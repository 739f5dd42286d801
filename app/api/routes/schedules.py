"""Schedules: `POST/GET /flows/{name}/schedules`, `GET/PATCH/DELETE /schedules/{id}`.

Making, changing and deleting a schedule need the `run` permission on its flow (and a key
allowed `runs:write`); reading one, `view` (`runs:read`). A schedule of a flow the caller may
not see is answered 404, as if it did not exist.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Path, Response

from app.api.body import JsonBodyRoute
from app.api.deps import FlowName, RunsReader, RunsWriter, SchedulesDep
from app.domain.schedules import Overlap
from app.schemas.common import error_responses
from app.schemas.schedules import (
    ScheduleCreate,
    ScheduleDetail,
    SchedulePatch,
    overlap_of,
)
from app.services.schedules import ScheduleChange, ScheduleRequest

router = APIRouter(tags=["schedules"], route_class=JsonBodyRoute)

ScheduleId = Annotated[uuid.UUID, Path(description="the schedule's id")]
EXAMPLES = {
    "weekdays": {
        "summary": "Weekdays at 9:00, Paris time",
        "value": {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris", "inputs": {"user_id": 1}},
    },
    "seconds": {
        "summary": "Every 10 seconds (6 fields, seconds first)",
        "value": {"cron": "*/10 * * * * *", "overlap": "allow"},
    },
}


@router.post(
    "/flows/{name}/schedules",
    summary="Schedule runs of a flow",
    description="Each tick of `cron` (in `timezone`) starts one run with `inputs`, as the "
    "caller, however many processes serve. Inputs are checked against the flow's latest "
    "version (422), and again at each tick. Needs the `run` permission.",
    status_code=201,
    response_model=ScheduleDetail,
    responses=error_responses(401, 403, 404, 409, 413, 415, 422),
)
async def create_schedule(
    caller: RunsWriter,
    name: FlowName,
    schedules: SchedulesDep,
    request: Annotated[ScheduleCreate, Body(openapi_examples=EXAMPLES)],
) -> ScheduleDetail:
    made = await schedules.create(
        caller,
        name,
        ScheduleRequest(
            cron=request.cron,
            timezone=request.timezone,
            inputs=request.inputs,
            overlap=Overlap(request.overlap),
            enabled=request.enabled,
        ),
    )
    return ScheduleDetail.of(made)


@router.get(
    "/flows/{name}/schedules",
    summary="List a flow's schedules, oldest first",
    response_model=list[ScheduleDetail],
    responses=error_responses(401, 403, 404, 422),
)
async def list_schedules(
    caller: RunsReader, name: FlowName, schedules: SchedulesDep
) -> list[ScheduleDetail]:
    return [ScheduleDetail.of(found) for found in await schedules.list_schedules(caller, name)]


@router.get(
    "/schedules/{schedule_id}",
    summary="Read a schedule, with its next fire times",
    response_model=ScheduleDetail,
    responses=error_responses(401, 403, 404, 422),
)
async def get_schedule(
    caller: RunsReader, schedule_id: ScheduleId, schedules: SchedulesDep
) -> ScheduleDetail:
    return ScheduleDetail.of(await schedules.read(caller, str(schedule_id)))


@router.patch(
    "/schedules/{schedule_id}",
    summary="Change a schedule: its cron, time zone, inputs, overlap; enable or disable it",
    description="Fields left out stay as they are. A new cron or time zone, or enabling it, "
    "makes it wait for its next tick from now. Needs the `run` permission.",
    response_model=ScheduleDetail,
    responses=error_responses(401, 403, 404, 413, 415, 422),
)
async def change_schedule(
    caller: RunsWriter,
    schedule_id: ScheduleId,
    schedules: SchedulesDep,
    change: SchedulePatch,
) -> ScheduleDetail:
    updated = await schedules.update(
        caller,
        str(schedule_id),
        ScheduleChange(
            cron=change.cron,
            timezone=change.timezone,
            inputs=change.inputs,
            overlap=overlap_of(change.overlap),
            enabled=change.enabled,
        ),
    )
    return ScheduleDetail.of(updated)


@router.delete(
    "/schedules/{schedule_id}",
    summary="Delete a schedule (its runs stay)",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
)
async def delete_schedule(
    caller: RunsWriter, schedule_id: ScheduleId, schedules: SchedulesDep
) -> None:
    await schedules.delete(caller, str(schedule_id))

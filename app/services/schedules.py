"""Schedules of a flow (DESIGN.md section 9): making, reading, changing and deleting them.

A schedule starts its runs as the user who made it (`created_by`), with its inputs checked as
any run's: when it is made (against the flow's latest version) and at each tick (against the
version the tick runs). Making, changing or deleting one needs the `run` permission on its
flow; seeing one, `view`; a caller who may not see the flow is told there is no such
schedule. The `Scheduler` (`services/scheduler.py`) fires them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from app.domain.access import Caller, Permission
from app.domain.clock import utcnow
from app.domain.schedules import (
    DEFAULT_TIMEZONE,
    Cron,
    CronError,
    Overlap,
    ScheduleOrigin,
    ScheduleRecord,
    ScheduleSpec,
)
from app.domain.storable import json_data
from app.dsl.inputs import validate_inputs
from app.errors import (
    DefinitionError,
    Problem,
    QuotaExceededError,
    RequestError,
    UnknownScheduleError,
)
from app.services.access import FlowAccessPolicy
from app.services.runner import Runner
from app.store.unit_of_work import Store, Transaction


@dataclass(frozen=True)
class ScheduleLimits:
    max_per_flow: int  # MAX_SCHEDULES_PER_FLOW
    min_interval_seconds: float  # MIN_SCHEDULE_INTERVAL_SECONDS


@dataclass(frozen=True)
class ScheduleRequest:
    """POST /flows/{name}/schedules."""

    cron: str
    timezone: str = DEFAULT_TIMEZONE
    inputs: Mapping[str, Any] | None = None
    overlap: Overlap = Overlap.SKIP
    enabled: bool = True


@dataclass(frozen=True)
class ScheduleChange:
    """PATCH /schedules/{id}: None leaves a field as it is."""

    cron: str | None = None
    timezone: str | None = None
    inputs: Mapping[str, Any] | None = None
    overlap: Overlap | None = None
    enabled: bool | None = None


class ScheduleService:
    def __init__(
        self,
        store: Store,
        runner: Runner,
        access: FlowAccessPolicy,
        limits: ScheduleLimits,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.runner = runner
        self.access = access
        self.limits = limits
        self.clock = clock
        self._changed: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` when a schedule is made or changed here (the scheduler wakes)."""
        self._changed.append(listener)

    async def create(self, caller: Caller, flow: str, request: ScheduleRequest) -> ScheduleRecord:
        await self.access.require(caller, flow, Permission.RUN)
        cron = self._cron(request.cron, request.timezone)
        inputs = await self._checked_inputs(flow, request.inputs or {})
        now = self.clock()
        record = ScheduleRecord(
            schedule_id=str(uuid.uuid4()),
            flow=flow,
            cron=cron,
            inputs=inputs,
            overlap=request.overlap,
            enabled=request.enabled,
            origin=ScheduleOrigin.API,
            created_by=caller.user_id,
            created_at=now,
            updated_at=now,
            next_fire_at=cron.next_after(now) if request.enabled else None,
            owner_name=caller.username,
        )
        async with self.store.write() as tx:
            await tx.flows.lock(flow)  # the count below stays true until this one is added
            count = await tx.schedules.count_of_flow(flow)
            if count >= self.limits.max_per_flow:
                raise QuotaExceededError(
                    f"flow {flow!r} has {count} schedules, the most MAX_SCHEDULES_PER_FLOW "
                    "allows: delete one, or ask an admin to raise the limit"
                )
            await tx.schedules.add(record)
        self._tell_changed()
        return record

    async def list_schedules(self, caller: Caller, flow: str) -> list[ScheduleRecord]:
        await self.access.require(caller, flow, Permission.VIEW)
        async with self.store.read() as tx:
            return await tx.schedules.of_flow(flow)

    async def read(self, caller: Caller, schedule_id: str) -> ScheduleRecord:
        return await self._required(caller, schedule_id, Permission.VIEW)

    async def update(
        self, caller: Caller, schedule_id: str, change: ScheduleChange
    ) -> ScheduleRecord:
        found = await self._required(caller, schedule_id, Permission.RUN)
        cron = found.cron
        if change.cron is not None or change.timezone is not None:
            cron = self._cron(
                change.cron if change.cron is not None else found.cron.expression,
                change.timezone if change.timezone is not None else found.cron.timezone,
            )
        inputs = found.inputs
        if change.inputs is not None:
            inputs = await self._checked_inputs(found.flow, change.inputs)
        enabled = found.enabled if change.enabled is None else change.enabled
        now = self.clock()
        timing_changed = cron != found.cron or enabled != found.enabled
        next_fire_at = found.next_fire_at
        if timing_changed or (enabled and next_fire_at is None):
            next_fire_at = cron.next_after(now) if enabled else None
        updated = replace(
            found,
            cron=cron,
            inputs=inputs,
            overlap=found.overlap if change.overlap is None else change.overlap,
            enabled=enabled,
            updated_at=now,
            next_fire_at=next_fire_at,
        )
        async with self.store.write() as tx:
            if await tx.schedules.get(schedule_id) is None:
                raise _no_schedule(schedule_id)
            await tx.schedules.replace(updated)
        self._tell_changed()
        return updated

    async def delete(self, caller: Caller, schedule_id: str) -> None:
        await self._required(caller, schedule_id, Permission.RUN)
        async with self.store.write() as tx:
            if not await tx.schedules.delete(schedule_id):
                raise _no_schedule(schedule_id)

    async def _required(
        self, caller: Caller, schedule_id: str, needed: Permission
    ) -> ScheduleRecord:
        async with self.store.read() as tx:
            found = await tx.schedules.get(schedule_id)
        if found is None:
            raise _no_schedule(schedule_id)
        await self.access.require(caller, found.flow, needed, _no_schedule(schedule_id))
        return found

    def _cron(self, expression: str, timezone: str) -> Cron:
        """The cron, checked; RequestError pointing at the field that is wrong."""
        try:
            Cron(expression, timezone).zone()
        except CronError as error:
            raise RequestError(str(error), loc=("body", "timezone")) from None
        try:
            cron = Cron.parse(expression, timezone)
        except CronError as error:
            raise RequestError(str(error), loc=("body", "cron")) from None
        check_interval(cron, self.limits.min_interval_seconds, self.clock(), ("body", "cron"))
        return cron

    async def _checked_inputs(self, flow: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The inputs as given (defaults are applied at each tick, by the version it runs),
        once the flow's latest version accepts them."""
        definition_id, _ = await self.runner.repository.locate(flow, None)
        definition = await self.runner.definition(definition_id)
        given = json_data(dict(inputs), root="inputs")
        validate_inputs(definition.inputs, given, strict=definition.strict_inputs)
        return dict(given)

    def _tell_changed(self) -> None:
        for listener in self._changed:
            listener()


def check_interval(cron: Cron, minimum: float, now: datetime, loc: tuple[str | int, ...]) -> None:
    """RequestError when the cron fires more often than every `minimum` seconds."""
    if cron.interval_at_least(now) < minimum:
        raise RequestError(
            f"the schedule fires more often than every {minimum:g} seconds, the shortest "
            "interval MIN_SCHEDULE_INTERVAL_SECONDS allows",
            loc=loc,
        )


async def replace_declared(
    tx: Transaction,
    flow: str,
    specs: Sequence[ScheduleSpec],
    owner: str,
    limits: ScheduleLimits,
    now: datetime,
) -> None:
    """A new version of `flow` was registered: its `schedules:` replace those the previous
    version declared (the API's are kept). DefinitionError when they would be too many, or
    fire too often."""
    problems: list[Problem] = []
    for index, spec in enumerate(specs):
        try:
            check_interval(spec.cron, limits.min_interval_seconds, now, ("schedules", index))
        except RequestError as error:
            problems.append(Problem(error.loc, error.message))
    made = await tx.schedules.count_of_flow(flow, ScheduleOrigin.API)
    if made + len(specs) > limits.max_per_flow:
        problems.append(
            Problem(
                ("schedules",),
                f"the flow would have {made + len(specs)} schedules ({made} made by the API), "
                f"more than MAX_SCHEDULES_PER_FLOW ({limits.max_per_flow}) allows",
            )
        )
    if problems:
        raise DefinitionError(problems)
    records = [
        ScheduleRecord(
            schedule_id=str(uuid.uuid4()),
            flow=flow,
            cron=spec.cron,
            inputs=dict(spec.inputs),
            overlap=spec.overlap,
            enabled=spec.enabled,
            origin=ScheduleOrigin.DEFINITION,
            created_by=owner,
            # A microsecond apart: listed (oldest first) in the order they are declared.
            created_at=now + timedelta(microseconds=index),
            updated_at=now,
            next_fire_at=spec.cron.next_after(now) if spec.enabled else None,
        )
        for index, spec in enumerate(specs)
    ]
    await tx.schedules.replace_declared(flow, records)


def _no_schedule(schedule_id: str) -> UnknownScheduleError:
    return UnknownScheduleError(f"no schedule has the id {schedule_id!r}")

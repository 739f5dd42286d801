"""`Scheduler`: starts the runs of due schedule ticks, in every process that runs runs (an API
process with its embedded worker, and `python -m app worker`); each tick exactly once
however many of them serve (docs/architecture.md, "Schedules").

A round: (1) read the flows of the due schedules and load their latest versions (parsed
definitions are cached by id; on SQLite the round's transaction holds the one connection, so
nothing is read beside it); (2) for `cancel_previous` schedules whose previous run is still
queued or running, cancel it through the cancel use case; (3) in one transaction, lock the
due rows `FOR UPDATE SKIP LOCKED`, and for each start the tick's run (idempotency key from
the schedule and the tick), or skip it (`overlap: skip` while the previous run is active),
and advance the row to its next tick. A tick missed while every process was down is the
latest tick at or before now: one run, then the schedule goes on from now (catch-up
`latest`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.background import stop_task
from app.domain.access import Caller, Permission, rights_of
from app.domain.clock import utcnow
from app.domain.records import Creation, NewRunRow
from app.domain.runs import ACTIVE_RUN_STATUSES, RunStatus
from app.domain.schedules import Overlap, ScheduleRecord, tick_key
from app.domain.storable import json_data
from app.dsl.inputs import validate_inputs
from app.dsl.models import FlowDefinition
from app.errors import FlowManagerError, NotFoundError, RunStateError
from app.services.observability.metrics import Metrics
from app.services.runs import RunService
from app.store.unit_of_work import Store, Transaction

logger = logging.getLogger(__name__)

MIN_PAUSE_SECONDS = 0.01

STARTED, SKIPPED, FAILED = "started", "skipped", "failed"


@dataclass(frozen=True)
class FireRound:
    """What the scheduler did with the due ticks: runs started, ticks skipped (overlap) and
    ticks failed (inputs the version refuses, the owner lost the `run` permission)."""

    started: int = 0
    skipped: int = 0
    failed: int = 0

    def __add__(self, other: FireRound) -> FireRound:
        return FireRound(
            self.started + other.started,
            self.skipped + other.skipped,
            self.failed + other.failed,
        )


@dataclass(frozen=True)
class _Version:
    definition_id: int
    definition: FlowDefinition


class Scheduler:
    def __init__(
        self,
        store: Store,
        runs: RunService,
        metrics: Metrics | None,
        *,
        poll_seconds: float,
        batch: int,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.runs = runs
        self.runner = runs.runner
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.clock = clock
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._fire_forever(), name="scheduler")

    async def stop(self) -> None:
        await stop_task(self._loop)
        self._loop = None

    def wake(self) -> None:
        """Look again now (a schedule was made or changed in this process)."""
        self._wake.set()

    async def fire_due(self) -> FireRound:
        """Handle every tick due now, `batch` schedules per transaction."""
        total = FireRound()
        while True:
            done, locked = await self._round(self.clock())
            total += done
            handled = done.started + done.skipped + done.failed
            if locked < self.batch or handled == 0:
                return total

    async def _round(self, now: datetime) -> tuple[FireRound, int]:
        async with self.store.read() as tx:
            seen = await tx.schedules.due(now, self.batch)
            active = await tx.schedules.active_runs(
                {s.last_run_id for s in seen if s.last_run_id and _cancels(s)}
            )
        if not seen:
            return FireRound(), 0
        versions = {flow: await self._latest(flow) for flow in {s.flow for s in seen}}
        refusals = {(s.flow, s.created_by): await self._refusal(s) for s in seen}
        for schedule in seen:
            if schedule.last_run_id in active:
                await self._cancel(schedule)
        started = 0
        outcomes: list[tuple[str, str]] = []
        async with self.store.write() as tx:
            due = await tx.schedules.lock_due(now, self.batch)
            current: dict[int, bool] = {}  # version id -> still its flow's latest
            for schedule in due:
                version = versions.get(schedule.flow)
                key = (schedule.flow, schedule.created_by)
                if version is None or key not in refusals:
                    continue  # not seen by this round's reads: the next round's
                if version.definition_id not in current:
                    current[version.definition_id] = await tx.schedules.is_current(
                        version.definition_id
                    )
                if not current[version.definition_id]:
                    continue  # a newer version came meanwhile: the next round loads it
                outcome = await self._fire(tx, schedule, version, refusals[key], now)
                outcomes.append((schedule.flow, outcome))
                started += outcome == STARTED
            if started:
                await tx.schedules.runs_queued()
        if started:
            self.runner.work_available.set()
        counts = {STARTED: 0, SKIPPED: 0, FAILED: 0}
        for flow, outcome in outcomes:
            counts[outcome] += 1
            if self.metrics is not None:
                self.metrics.schedule_tick(flow, outcome)
        return FireRound(counts[STARTED], counts[SKIPPED], counts[FAILED]), len(due)

    async def _fire(
        self,
        tx: Transaction,
        schedule: ScheduleRecord,
        version: _Version,
        refused: str | None,
        now: datetime,
    ) -> str:
        """Handle the schedule's due tick, on its flow's current version: its outcome."""
        assert schedule.next_fire_at is not None
        cron = schedule.cron
        tick = max(schedule.next_fire_at, cron.latest_at_or_before(now))
        following = cron.next_after(now)
        if refused is not None:
            await tx.schedules.fired(schedule.schedule_id, tick, following, None, refused)
            return FAILED
        if schedule.overlap is Overlap.SKIP and schedule.last_run_id is not None:
            previous = await tx.schedules.run_status(schedule.last_run_id)
            if previous in ACTIVE_RUN_STATUSES:
                await tx.schedules.fired(schedule.schedule_id, tick, following, None, None)
                return SKIPPED
        definition = version.definition
        try:
            values = json_data(
                validate_inputs(
                    definition.inputs, schedule.inputs, strict=definition.strict_inputs
                ),
                root="inputs",
            )
        except FlowManagerError as error:
            await tx.schedules.fired(schedule.schedule_id, tick, following, None, error.message)
            return FAILED
        run = NewRunRow(
            run_id=str(uuid.uuid4()),
            flow_name=schedule.flow,
            definition_id=version.definition_id,
            status=RunStatus.QUEUED,
            inputs=values,
            step_ids=[step.id for step in definition.steps],
            idempotency_key=tick_key(schedule.schedule_id, tick),
            created_at=now,
            latest_only=True,
            created_by=schedule.created_by,
        )
        creation = await tx.schedules.start_run(run)
        # KEY_TAKEN: the tick's run exists (a row advanced by hand?): never a second one.
        run_id = run.run_id if creation is Creation.CREATED else None
        await tx.schedules.fired(schedule.schedule_id, tick, following, run_id, None)
        return STARTED if run_id is not None else SKIPPED

    async def _refusal(self, schedule: ScheduleRecord) -> str | None:
        """Why the schedule's owner may no longer start its runs; None when it may."""
        try:
            await self.runs.access.require(_owner(schedule), schedule.flow, Permission.RUN)
        except FlowManagerError as error:
            return f"{schedule.owner_name or schedule.created_by} may not run it: {error.message}"
        return None

    async def _latest(self, flow: str) -> _Version | None:
        try:
            definition_id, _ = await self.runner.repository.locate(flow, None)
        except NotFoundError:
            return None  # deleted meanwhile, with its schedules
        return _Version(definition_id, await self.runner.definition(definition_id))

    async def _cancel(self, schedule: ScheduleRecord) -> None:
        """`cancel_previous`: cancel the schedule's active previous run (through the cancel
        use case, as its owner) before the tick starts the next one."""
        assert schedule.last_run_id is not None
        try:
            await self.runs.cancel(_owner(schedule), schedule.last_run_id)
        except (RunStateError, NotFoundError):
            pass  # it ended meanwhile, or is gone
        except FlowManagerError as error:
            logger.warning(
                "schedule %s: cancelling run %s failed: %s",
                schedule.schedule_id,
                schedule.last_run_id,
                error.message,
            )

    async def _fire_forever(self) -> None:
        while True:
            try:
                await self.fire_due()
                async with self.store.read() as tx:
                    earliest = await tx.schedules.earliest()
            except Exception:  # a database hiccup must not stop the schedules
                logger.exception("firing schedules failed")
                earliest = None
            pause = self.poll_seconds
            if earliest is not None:
                pause = min(pause, (earliest - self.clock()).total_seconds())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # not wait_for: see worker/claim_loop.py
                async with asyncio.timeout(max(pause, MIN_PAUSE_SECONDS)):
                    await self._wake.wait()


def _cancels(schedule: ScheduleRecord) -> bool:
    return schedule.overlap is Overlap.CANCEL_PREVIOUS


def _owner(schedule: ScheduleRecord) -> Caller:
    """Whom a schedule's runs are started (and its previous runs cancelled) as."""
    return Caller(
        user_id=schedule.created_by,
        username=schedule.owner_name,
        is_admin=schedule.owner_is_admin,
        scopes=rights_of(schedule.owner_is_admin),
    )

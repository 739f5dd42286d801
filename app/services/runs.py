"""Starting, executing, reading, cancelling and retrying runs of stored flows.

`execute` runs its run in this process and waits for it (up to `wait` seconds); `start` queues
it for any worker (`claim`). Whoever executes a run holds its lease (`store/queue.py`) and
renews it (`renew_leases`, from the heartbeat); if this process dies, another worker takes the
run over and finishes it from the steps that had finished. Every transition is persisted by
the engine through the SQL run store, so a run can be read, cancelled or retried from any
process. A retried (or taken over) run keeps the steps it had finished.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.access import Caller, Permission
from app.domain.clock import utcnow
from app.domain.records import Creation, NewRunRow, RunPage, RunRecord, StartedRun, StepRecord
from app.domain.runs import RETRYABLE_RUN_STATUSES, RunError, RunStatus, TaskKey, TaskStatus
from app.dsl.inputs import validate_inputs
from app.dsl.models import FlowDefinition
from app.engine.attempts import ResumePoint, TaskOutcome
from app.engine.executor import FlowExecutor
from app.engine.run import RunResult, collect_outputs, kept_on_retry
from app.errors import (
    ConflictError,
    FlowManagerError,
    LeaseLostError,
    RunStateError,
    UnknownRunError,
    UnknownStepError,
)
from app.services.access import FlowAccessPolicy
from app.services.cursors import CursorCodec
from app.services.limits import RunRateLimiter
from app.storable import json_data
from app.store import definitions, notifications, queue, runs, secrets
from app.store.database import is_passing_failure
from app.store.run_store import SqlRunStore

logger = logging.getLogger(__name__)

DEFINITION_CACHE_SIZE = 256
STALE_VERSION_ATTEMPTS = 5  # a version registered (or deleted) while a run starts: look again
Fresh = tuple[FlowDefinition, dict[str, Any]]  # a new run's definition and checked inputs
# A repeated /execute waits for a run running elsewhere by reading it at these intervals.
FIRST_POLL_SECONDS, LAST_POLL_SECONDS = 0.05, 1.0


class RunService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        executor: FlowExecutor,
        store: SqlRunStore,
        access: FlowAccessPolicy,
        limiter: RunRateLimiter,
        *,
        owner: str,
        lease_seconds: float,
        cursor_secret: bytes | None = None,
    ) -> None:
        """`store`: the executor's run store, which also creates runs on its fastest path.
        `owner`: this process's worker id, the holder of the leases of the runs it runs.
        `cursor_secret`: signs the cursors of run lists (SECRET_KEY); None: the secret the
        migrations keep in the store, which every process of the service shares."""
        self.sessions = sessions
        self.executor = executor
        self.store = store
        self.access = access
        self.limiter = limiter
        self.owner = owner
        self.lease_seconds = lease_seconds
        self._cursors = CursorCodec(cursor_secret) if cursor_secret else None
        self.in_flight: dict[str, asyncio.Task[RunResult | None]] = {}
        self.work_available = asyncio.Event()  # wakes the embedded worker
        self.worker_saturated = False  # the worker left queued work for want of a free slot
        self._definitions: OrderedDict[int, FlowDefinition] = OrderedDict()
        self._loading: dict[int, asyncio.Future[FlowDefinition]] = {}
        # (name, version asked for) -> (id, version) found; checked when a run is created.
        self._versions: dict[tuple[str, int | None], tuple[int, int]] = {}

    # Starting runs.

    async def start(
        self,
        caller: Caller,
        name: str,
        inputs: Mapping[str, Any],
        *,
        version: int | None = None,
        idempotency_key: str | None = None,
    ) -> StartedRun:
        """Queue a run for the worker; inputs are checked first."""
        new = await self._create(caller, name, inputs, version, idempotency_key, RunStatus.QUEUED)
        if new.created:
            self.work_available.set()
        return StartedRun(await self.get(new.run_id, with_steps=False), new.created)

    async def execute(
        self,
        caller: Caller,
        name: str,
        inputs: Mapping[str, Any],
        *,
        version: int | None = None,
        wait: float = 30,
        idempotency_key: str | None = None,
    ) -> StartedRun:
        """Run in this process and wait up to `wait` seconds for the run to finish.

        A repeated idempotency key waits as long for the run the first request made, wherever
        it runs: the answer is the one the first request would have had."""
        new = await self._create(caller, name, inputs, version, idempotency_key, RunStatus.RUNNING)
        if not new.created:
            return StartedRun(await self._when_finished(new.run_id, wait), created=False)
        task = self.launch(new.run_id, new.fresh)
        if wait > 0:
            done, _ = await asyncio.wait({task}, timeout=wait)
            result = task.result() if done and not task.cancelled() else None
            if result is not None:  # answer from memory: nothing to read back
                return StartedRun(new.finished(result, caller.username), created=True)
        return StartedRun(await self.get(new.run_id, with_steps=False), created=True)

    async def _when_finished(self, run_id: str, wait: float) -> RunRecord:
        """The run once it has finished, or as it is after `wait` seconds. A run of this
        process is awaited; one queued or running elsewhere is read again, less and less
        often (50 ms, doubling up to 1 s)."""
        deadline = time.monotonic() + wait
        pause = FIRST_POLL_SECONDS
        while True:
            task = self.in_flight.get(run_id)
            if task is not None:
                await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
            run = await self.get(run_id, with_steps=False)
            left = deadline - time.monotonic()
            if run.finished or left <= 0:
                return run
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, LAST_POLL_SECONDS)

    async def _create(
        self,
        caller: Caller,
        name: str,
        inputs: Mapping[str, Any],
        version: int | None,
        idempotency_key: str | None,
        status: RunStatus,
    ) -> _Created:
        """A new run, or the run an earlier request of the caller made on the flow with the
        same idempotency key.

        The flow's version is looked up once per process and remembered; the statement that
        creates the run checks that it is still current (the latest, unless one was asked
        for), and when it is not the version is looked up again.
        """
        await self.access.require(caller, name, Permission.RUN)
        if idempotency_key is not None:
            existing = await self._run_with_key(idempotency_key, name, caller)
            if existing is not None:
                return _Created(existing)
        self.limiter.take(caller)
        for _ in range(STALE_VERSION_ATTEMPTS):
            definition_id, number = await self._located(name, version)
            definition = await self._definition(definition_id)
            values = json_data(
                validate_inputs(definition.inputs, inputs, strict=definition.strict_inputs),
                root="inputs",
            )
            created_at = utcnow()
            # /execute's run is created holding its lease; a queued run waits for a claim.
            lease = self._lease(created_at) if status is RunStatus.RUNNING else {}
            run = NewRunRow(
                run_id=_new_run_id(),
                flow_name=name,
                definition_id=definition_id,
                status=status,
                inputs=values,
                step_ids=[step.id for step in definition.steps],
                idempotency_key=idempotency_key,
                created_at=created_at,
                created_by=caller.user_id,
                latest_only=version is None,
                **lease,
            )
            creation = await self.store.create_run(run)
            if creation is Creation.CREATED:
                return _Created(run.run_id, (definition, values), number, created_at)
            if creation is Creation.KEY_TAKEN:  # lost the race to an identical request
                assert idempotency_key is not None
                existing = await self._run_with_key(idempotency_key, name, caller)
                assert existing is not None
                return _Created(existing)
            self._versions.pop((name, version), None)  # stale: a version came or went
        raise ConflictError(f"flow {name!r} kept changing while a run was being started")

    async def _located(self, name: str, version: int | None) -> tuple[int, int]:
        """(id, version) of the flow's latest version (or of `version`), remembered."""
        located = self._versions.get((name, version))
        if located is None:
            located = await self.store.locate(name, version)
            if len(self._versions) >= DEFINITION_CACHE_SIZE:
                self._versions.clear()
            self._versions[name, version] = located
        return located

    async def _run_with_key(self, idempotency_key: str, name: str, caller: Caller) -> str | None:
        async with self.sessions() as session:
            return await runs.id_for_key(session, idempotency_key, name, caller.user_id)

    async def claim(self, limit: int) -> int:
        """Claim up to `limit` queued runs, or runs whose worker died, and launch them here;
        how many."""
        async with self.sessions.begin() as session:
            claims = await queue.claim(session, self.owner, utcnow(), self.lease_seconds, limit)
        for claim in claims:
            if not claim.fresh:
                logger.info("run %s: its worker's lease expired; taking it over", claim.run_id)
            self.launch(claim.run_id, claim)
        return len(claims)

    def launch(
        self, run_id: str, fresh: Fresh | queue.Claim | None = None
    ) -> asyncio.Task[RunResult | None]:
        """Execute the run (already marked running, its lease held here) in a task of this
        process.

        `fresh`: the definition and inputs of a run just created here, or the claim of a run
        that never started, which have no earlier results to restore: nothing is read back.
        """
        task = asyncio.create_task(self._execute(run_id, fresh), name=f"run-{run_id}")
        self.in_flight[run_id] = task
        task.add_done_callback(lambda _: self._landed(run_id))
        return task

    def _landed(self, run_id: str) -> None:
        self.in_flight.pop(run_id, None)
        if self.worker_saturated:  # a slot is free for the queued work the worker had to leave
            self.work_available.set()

    async def _execute(self, run_id: str, fresh: Fresh | queue.Claim | None) -> RunResult | None:
        """Run to the end; the result, or None when the run could not be executed."""
        try:
            if isinstance(fresh, queue.Claim):  # loaded here, so a failure is the run's
                claim = fresh
                fresh = None  # taken over: its finished steps are read back below
                if claim.fresh:
                    fresh = (await self._definition(claim.definition_id), claim.inputs)
            if fresh is not None:
                definition, inputs = fresh
                return await self.executor.run(definition, inputs, run_id=run_id)
            async with self.sessions() as session:
                record = await runs.get(session, run_id)
                definition_id = await runs.definition_id_of(session, run_id)
                assert record is not None
                assert definition_id is not None
            definition = await self._definition(definition_id)
            restored = kept_on_retry(definition, previous_outcomes(definition, record.steps))
            return await self.executor.run(
                definition,
                record.inputs,
                run_id=run_id,
                restored=restored,
                resume=resume_points(definition, record.steps),
            )
        except asyncio.CancelledError:
            raise
        except LeaseLostError:
            logger.info("run %s: lease lost; its new owner (or its end) stands", run_id)
            return None
        except Exception as error:
            if is_passing_failure(error):  # the store is down or overloaded: try again later
                logger.warning("run %s: the store failed (%r); handing it over", run_id, error)
                await self._give_up(run_id)
            else:  # the store refused what was asked, or the definition broke: not a step
                logger.exception("run %s could not be executed", run_id)
                await self._mark_failed(run_id, error)
            return None

    async def _give_up(self, run_id: str) -> None:
        """Release the run's lease, so a worker takes it over (from its finished steps) once
        the store answers again; if it does not answer now, the lease expires by itself."""
        try:
            async with self.sessions.begin() as session:
                await queue.release(session, self.owner, [run_id], utcnow())
        except Exception as error:
            logger.warning("run %s: releasing it failed too (%r)", run_id, error)

    async def _mark_failed(self, run_id: str, error: Exception) -> None:
        failure = RunError(None, type(error).__name__, str(error) or type(error).__name__)
        try:
            async with self.sessions.begin() as session:
                await runs.end_active(
                    session, run_id, RunStatus.FAILED, utcnow(), error=failure.as_dict()
                )
        except Exception:  # the run stays running; its lease expires and it is taken over
            logger.exception("run %s: recording its failure failed", run_id)

    def _lease(self, now: datetime) -> dict[str, Any]:
        return queue.lease_values(self.owner, now, self.lease_seconds)

    async def _definition(self, definition_id: int) -> FlowDefinition:
        """The parsed definition of a stored version (versions never change: cached by id).

        Loaded once however many runs ask at the same moment: a worker that claims 100 runs
        of a new version reads it once, not on 100 connections.
        """
        definition = self._definitions.get(definition_id)
        if definition is not None:
            return definition
        loading = self._loading.get(definition_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load_definition(definition_id))
            self._loading[definition_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(definition_id, None))
        return await asyncio.shield(loading)

    async def _load_definition(self, definition_id: int) -> FlowDefinition:
        async with self.sessions() as session:
            source, format = await definitions.source_of(session, definition_id)
        parsed = await asyncio.to_thread(  # off the event loop: it may be large
            self.executor.parse, source, format=format
        )
        definition = parsed.definition
        self._definitions[definition_id] = definition
        if len(self._definitions) > DEFINITION_CACHE_SIZE:
            self._definitions.popitem(last=False)
        return definition

    # Reading runs.

    async def read(self, caller: Caller, run_id: str, *, with_steps: bool = True) -> RunRecord:
        """The run, when the caller may see its flow (else UnknownRunError, as if it did not
        exist)."""
        record = await self.get(run_id, with_steps=with_steps)
        await self.access.require(caller, record.flow, Permission.VIEW, _no_run(run_id))
        return record

    async def get(self, run_id: str, *, with_steps: bool = True) -> RunRecord:
        async with self.sessions() as session:
            record = await runs.get(session, run_id, with_steps=with_steps)
        if record is None:
            raise _no_run(run_id)
        return record

    async def task(self, caller: Caller, run_id: str, step_id: str, task_index: int) -> StepRecord:
        """One task of the run: its step (task_index 0), or one element of its fan-out."""
        await self.read(caller, run_id, with_steps=False)  # an unknown run is a 404 of its own
        async with self.sessions() as session:
            found = await runs.task(session, run_id, step_id, task_index)
        if found is None:
            raise UnknownStepError(
                f"run {run_id} has no step {step_id!r} with task_index {task_index}"
            )
        return found

    async def list_runs(
        self,
        caller: Caller,
        *,
        flow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
        value_limit: int | None = None,
    ) -> RunPage:
        """The runs of the flows the caller may see, newest first. `value_limit`: inputs
        and outputs larger than that (as the store keeps them) are left in the store
        (`OmittedValue`)."""
        cursors = await self._cursor_codec()
        after = cursors.decode(cursor) if cursor else None
        viewer = None if caller.acts_as_admin else caller.user_id
        async with self.sessions() as session:
            found = await runs.page(
                session,
                flow=flow,
                status=status,
                limit=limit + 1,
                after=after,
                viewer=viewer,
                value_limit=value_limit,
            )
        items = found[:limit]
        more = len(found) > limit
        next_cursor = cursors.encode(items[-1].created_at, items[-1].run_id) if more else None
        return RunPage(tuple(items), next_cursor)

    async def _cursor_codec(self) -> CursorCodec:
        """The codec of run-list cursors, read from the store the first time it is needed."""
        if self._cursors is None:
            async with self.sessions() as session:
                stored = await secrets.get(session, secrets.CURSOR_KEY)
            if stored is None:
                raise FlowManagerError("the store has no cursor key: run its migrations")
            self._cursors = CursorCodec(stored.encode())
        return self._cursors

    # Changing runs.

    async def cancel(self, caller: Caller, run_id: str) -> RunRecord:
        """Cancel a queued or running run, wherever it runs.

        Here, the engine records the cancellation as it unwinds. Elsewhere, the run is ended
        here and its worker is notified: it stops the run's steps (see `stop_local`).
        """
        await self._require_run_permission(caller, run_id)
        task = self.in_flight.get(run_id)
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=10)
        async with self.sessions.begin() as session:  # queued, running elsewhere, or unstarted
            changed = await runs.end_active(session, run_id, RunStatus.CANCELLED, utcnow())
            if changed:
                await notifications.notify(session, notifications.RUN_CANCELLED, run_id)
        record = await self.get(run_id)
        if task is None and not changed:
            raise RunStateError(
                f"run {run_id} is {record.status.value}; "
                "only queued or running runs can be cancelled"
            )
        return record

    async def retry(self, caller: Caller, run_id: str) -> RunRecord:
        """Run a failed or cancelled run again from its unfinished steps."""
        await self._require_run_permission(caller, run_id)
        async with self.sessions.begin() as session:
            changed = await runs.change_status(
                session,
                run_id,
                RunStatus.RUNNING,
                only_from=RETRYABLE_RUN_STATUSES,
                finished_at=None,
                error=None,
                **self._lease(utcnow()),
            )
        if not changed:
            record = await self.get(run_id)
            raise RunStateError(
                f"run {run_id} is {record.status.value}; "
                "only failed or cancelled runs can be retried"
            )
        self.launch(run_id)
        return await self.get(run_id)

    async def _require_run_permission(self, caller: Caller, run_id: str) -> None:
        """404 when the caller may not see the run's flow, 403 when it may but not run it."""
        run = await self.get(run_id, with_steps=False)
        await self.access.require(caller, run.flow, Permission.RUN, _no_run(run_id))

    # Leases and lifecycle.

    def stop_local(self, run_id: str) -> None:
        """Stop the run's execution here, if it runs here (it was cancelled or taken over
        elsewhere); its store writes are refused, so it records nothing more."""
        task = self.in_flight.get(run_id)
        if task is not None:
            task.cancel()

    async def renew_leases(self) -> None:
        """Extend the leases of the runs running here; stop those this process lost."""
        async with self.sessions.begin() as session:
            lost = await queue.renew(
                session, self.owner, list(self.in_flight), utcnow(), self.lease_seconds
            )
        for run_id in lost:
            logger.info("run %s: no longer held here (cancelled or taken over)", run_id)
            self.stop_local(run_id)

    async def resume_interrupted(self) -> int:
        """A single-process store at start: the runs it left running resume at once (their
        leases were this process's, before it stopped); how many."""
        async with self.sessions.begin() as session:
            count = await queue.expire_all(session, utcnow())
        if count:
            self.work_available.set()
        return count

    async def shutdown(self, grace: float) -> None:
        """Let in-flight runs finish for `grace` seconds; release the others' leases, so
        another worker takes them over at once, and stop them here."""
        tasks = list(self.in_flight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        unfinished = dict(self.in_flight)
        if not unfinished:
            return
        try:
            async with self.sessions.begin() as session:
                await queue.release(session, self.owner, list(unfinished), utcnow())
        except Exception:  # the store is down: the leases expire by themselves
            logger.exception("releasing %d unfinished run(s) failed", len(unfinished))
        for task in unfinished.values():
            task.cancel()
        await asyncio.wait(unfinished.values())
        logger.info("released %d unfinished run(s) to other workers", len(unfinished))


@dataclass(frozen=True)
class _Created:
    run_id: str
    fresh: Fresh | None = None  # set when this call created the run
    version: int = 0
    created_at: datetime | None = None

    @property
    def created(self) -> bool:
        return self.fresh is not None

    def finished(self, result: RunResult, created_by: str) -> RunRecord:
        """The run this call created, as it finished."""
        assert self.fresh is not None
        assert self.created_at is not None
        return RunRecord(
            run_id=self.run_id,
            flow=result.flow,
            version=self.version,
            status=result.status,
            inputs=self.fresh[1],
            outputs=result.outputs,
            error=result.error,
            remaining_steps=0,
            created_at=self.created_at,
            started_at=result.started_at,
            finished_at=result.finished_at,
            created_by=created_by,
        )


def previous_outcomes(
    definition: FlowDefinition, steps: Sequence[StepRecord]
) -> dict[str, TaskOutcome]:
    """Each step's result in an earlier execution, as the engine sees results."""
    rows: dict[str, list[StepRecord]] = defaultdict(list)
    for row in steps:
        rows[row.step_id].append(row)
    outcomes: dict[str, TaskOutcome] = {}
    for step in definition.steps:
        tasks = sorted(rows.get(step.id, ()), key=lambda task: task.task_index)
        if not tasks:
            continue
        if step.for_each is None or tasks[0].status is TaskStatus.SKIPPED:
            first = tasks[0]
            outcomes[step.id] = TaskOutcome(
                TaskKey(step.id), first.status, first.outputs, first.error
            )
        elif all(task.status is TaskStatus.COMPLETED for task in tasks):
            empty = len(tasks) == 1 and tasks[0].outputs is None  # a fan-out over no element
            collected = collect_outputs(step, [] if empty else [task.outputs for task in tasks])
            outcomes[step.id] = TaskOutcome(
                TaskKey(step.id), TaskStatus.COMPLETED, None, None, collected
            )
    return outcomes


def resume_points(
    definition: FlowDefinition, steps: Sequence[StepRecord]
) -> dict[str, ResumePoint]:
    """Where the attempts of the steps that were under way continue, when a run is taken over.

    A task left running was interrupted: its attempt runs again, under the same number. A
    task queued again after a failed attempt waits for its retry: the next attempt, at its
    `available_at`. Fan-outs start over (their elements are tasks of their own).
    """
    single = {step.id for step in definition.steps if step.for_each is None}
    points: dict[str, ResumePoint] = {}
    for task in steps:
        if task.step_id not in single or task.attempts == 0:
            continue
        if task.status is TaskStatus.RUNNING:
            points[task.step_id] = ResumePoint(task.attempts)
        elif task.status is TaskStatus.QUEUED and task.error is not None:
            points[task.step_id] = ResumePoint(task.attempts + 1, task.available_at)
    return points


def _no_run(run_id: str) -> UnknownRunError:
    return UnknownRunError(f"no run has the id {run_id!r}")


def _new_run_id() -> str:
    return str(uuid.uuid4())

"""Starting, executing, reading, cancelling and retrying runs of stored flows: the API's use
cases.

`execute` runs its run in this process (the `Runner`) and waits for it (up to `wait`
seconds); `start` queues it for any worker. Every transition is persisted by the engine
through the store, so a run can be read, cancelled or retried from any process. A retried (or
taken over) run keeps the steps it had finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from cachetools import LRUCache

from app.domain.access import Caller, Permission
from app.domain.clock import utcnow
from app.domain.concurrency import RunConcurrency, shown_key
from app.domain.fixtures import Expectation, ExpectedFailure, ExpectedOutputs, Fixture
from app.domain.records import (
    AttemptLog,
    Creation,
    NewRunRow,
    RunPage,
    RunRecord,
    Sending,
    SentSignal,
    StartedRun,
    StepRecord,
)
from app.domain.run_diff import RunDiff, diff_runs
from app.domain.runs import ACTIVE_RUN_STATUSES, RETRYABLE_RUN_STATUSES, RunStatus, TaskStatus
from app.domain.storable import json_data, sized_json_data
from app.dsl.inputs import validate_inputs
from app.dsl.models import FlowDefinition
from app.engine.forks import plan_fork
from app.engine.resume import previous_outcomes, steps_run_again
from app.engine.run import RunResult
from app.errors import (
    ConflictError,
    FlowManagerError,
    InputValidationError,
    Loc,
    PayloadTooLargeError,
    QuotaExceededError,
    RequestError,
    RunStateError,
    UnknownRunError,
    UnknownStepError,
    UnstorableValueError,
    ValueTooLargeError,
)
from app.services.access import FlowAccessPolicy
from app.services.cursors import CursorCodec
from app.services.limits import RunRateLimiter
from app.services.loading_cache import LoadingCache
from app.services.observability.metrics import Metrics
from app.services.observability.traces import NO_TRACING, Tracing
from app.services.ports import RunRepository
from app.services.runner import Launch, Runner

VERSION_CACHE_SIZE = 256
STALE_VERSION_ATTEMPTS = 5  # a version registered (or deleted) while a run starts: look again
# A repeated /execute waits for a run running elsewhere by reading it at these intervals.
FIRST_POLL_SECONDS, LAST_POLL_SECONDS = 0.05, 1.0


class RunService:
    def __init__(
        self,
        repository: RunRepository,
        runner: Runner,
        access: FlowAccessPolicy,
        limiter: RunRateLimiter,
        *,
        owner: str,
        cursor_secret: bytes | None = None,
        tracing: Tracing = NO_TRACING,
        metrics: Metrics | None = None,
        signal_limits: SignalLimits | None = None,
        max_batch_runs: int = 1000,
    ) -> None:
        """`owner`: this process's worker id, the holder of the leases of the runs it runs.
        `cursor_secret`: signs the cursors of run lists (SECRET_KEY); None: the secret the
        migrations keep in the store, which every process of the service shares."""
        self.signal_limits = signal_limits or SignalLimits()
        self.max_batch_runs = max_batch_runs  # MAX_BATCH_RUNS
        self.repository = repository
        self.runner = runner
        self.access = access
        self.limiter = limiter
        self.owner = owner
        self.tracing = tracing
        self.metrics = metrics
        self._cursors = CursorCodec(cursor_secret) if cursor_secret else None
        # (name, version asked for) -> (id, version) found; checked when a run is created.
        self._versions = LoadingCache[tuple[str, int | None], tuple[int, int]](
            LRUCache(VERSION_CACHE_SIZE)
        )

    # Starting runs.

    async def start(
        self,
        caller: Caller,
        name: str,
        inputs: Mapping[str, Any],
        *,
        version: int | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
    ) -> StartedRun:
        """Queue a run for the worker; inputs are checked first. `priority`: higher is
        claimed first. `traceparent`: the W3C trace context of the request (kept with the
        run: its spans link to it)."""
        new = await self._create(
            caller,
            name,
            inputs,
            version,
            idempotency_key,
            RunStatus.QUEUED,
            traceparent,
            priority=priority,
        )
        if not new.created:
            return StartedRun(await self.get(new.run_id, with_steps=False), created=False)
        # Answered from what was written, not read back: a worker may already have claimed it.
        queued = new.as_created(name, RunStatus.QUEUED, caller.username)
        self.runner.work_available.set()
        return StartedRun(queued, created=True)

    async def execute(
        self,
        caller: Caller,
        name: str,
        inputs: Mapping[str, Any],
        *,
        version: int | None = None,
        priority: int = 0,
        wait: float = 30,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
    ) -> StartedRun:
        """Run in this process and wait up to `wait` seconds for the run to finish.

        A run of a flow with a `concurrency:` limit is queued instead, with `priority`, and
        waited for in the same way: a claim starts it once its key has a free slot, on any
        worker, so that /execute never runs more of a key at once than its limit.

        A repeated idempotency key waits as long for the run the first request made, wherever
        it runs: the answer is the one the first request would have had."""
        for _ in range(STALE_VERSION_ATTEMPTS):
            new = await self._create(
                caller,
                name,
                inputs,
                version,
                idempotency_key,
                RunStatus.RUNNING,
                traceparent,
                priority=priority,
                awaited=wait <= 0,  # answered at once, as it stands then: running
            )
            if new.launch is None:
                return StartedRun(await self._when_finished(new.run_id, wait), created=False)
            if new.queued:
                self.runner.work_available.set()
                return StartedRun(await self._when_finished(new.run_id, wait), created=True)
            task = self.runner.launch(new.launch)
            if new.created_later is None or await new.created_later is Creation.CREATED:
                return await self._executed(new, task, wait, caller)
            # Stale after all: the store refused the run's writes, so it did nothing.
            await asyncio.wait({task})
            self._versions.forget((name, version))
        raise ConflictError(f"flow {name!r} kept changing while a run was being started")

    async def _executed(
        self, new: _Created, task: asyncio.Task[RunResult | None], wait: float, caller: Caller
    ) -> StartedRun:
        """The run `execute` launched here, once it finished or after `wait` seconds."""
        if wait > 0:
            deadline = time.monotonic() + wait
            done, _ = await asyncio.wait({task}, timeout=wait)
            result = task.result() if done and not task.cancelled() else None
            if result is not None and not result.parked:  # answer from memory: no read back
                return StartedRun(new.finished(result, caller.username), created=True)
            if result is not None:  # it waits without a worker: whoever resumes it ends it
                left = deadline - time.monotonic()
                return StartedRun(await self._when_finished(new.run_id, left), created=True)
        return StartedRun(await self.get(new.run_id, with_steps=False), created=True)

    async def start_child(
        self,
        caller: Caller,
        name: str,
        inputs: Mapping[str, Any],
        version: int | None,
        parent: ParentStep,
        resume_failed: bool,
    ) -> str:
        """Queue the child run a parent's step starts, as the parent's user: one per step
        (its idempotency key), so a parent resumed or retried finds the one it started. With
        `resume_failed` (a retried parent), a failed or cancelled child is resumed (`retry`),
        not started anew."""
        key = f"child:{parent.run_id}:{parent.step_id}"
        new = await self._create(
            caller, name, inputs, version, key, RunStatus.QUEUED, parent=parent
        )
        if new.created:
            self.runner.work_available.set()
            return new.run_id
        child = await self.get(new.run_id, with_steps=False)
        if resume_failed and child.status in RETRYABLE_RUN_STATUSES:
            await self.retry(caller, new.run_id)
        return new.run_id

    async def start_all(
        self,
        caller: Caller,
        name: str,
        batch: Sequence[RunToStart],
        *,
        version: int | None = None,
        traceparent: str | None = None,
    ) -> list[RunRecord]:
        """Queue many runs of the flow in one transaction: every one, or none. Each run's
        inputs are checked first; a problem points at its place (`runs[3].inputs.name`)."""
        if len(batch) > self.max_batch_runs:
            raise RequestError(
                f"{len(batch)} runs in one batch; MAX_BATCH_RUNS allows {self.max_batch_runs}",
                loc=("body", "runs"),
            )
        await self.access.require(caller, name, Permission.RUN)
        self.limiter.take(caller, len(batch))
        trace = self.tracing.request_traceparent(traceparent)
        for _ in range(STALE_VERSION_ATTEMPTS):
            definition_id, number = await self._located(name, version)
            definition = await self.runner.definition(definition_id)
            created_at = utcnow()
            rows = []
            for index, run in enumerate(batch):
                with _at(("runs", index)):
                    values, concurrency = _checked_inputs(definition, run.inputs)
                rows.append(
                    NewRunRow(
                        run_id=str(uuid.uuid4()),
                        flow_name=name,
                        definition_id=definition_id,
                        status=RunStatus.QUEUED,
                        inputs=values,
                        step_ids=[step.id for step in definition.steps],
                        idempotency_key=None,
                        created_at=created_at,
                        latest_only=version is None,
                        created_by=caller.user_id,
                        traceparent=trace,
                        priority=run.priority,
                        concurrency=concurrency,
                    )
                )
            if await self.repository.create_all(rows) is Creation.CREATED:
                self.runner.work_available.set()
                return [_queued(row, number, caller.username) for row in rows]
            self._versions.forget((name, version))  # stale: a version came or went
        raise ConflictError(f"flow {name!r} kept changing while its runs were being started")

    async def _when_finished(self, run_id: str, wait: float) -> RunRecord:
        """The run once it has finished, or as it is after `wait` seconds. A run of this
        process is awaited; one queued or running elsewhere is read again, less and less
        often (50 ms, doubling up to 1 s)."""
        deadline = time.monotonic() + wait
        pause = FIRST_POLL_SECONDS
        while True:
            await self.runner.wait_for(run_id, deadline - time.monotonic())
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
        traceparent: str | None = None,
        *,
        parent: ParentStep | None = None,
        priority: int = 0,
        awaited: bool = False,
    ) -> _Created:
        """A new run, or the run an earlier request of the caller made on the flow with the
        same idempotency key. `awaited`: the run this process executes at once is created
        on its own too, not with its first progress (`create_later`).

        The flow's version is looked up once per process and remembered; the statement that
        creates the run checks that it is still current (the latest, unless one was asked
        for), and when it is not the version is looked up again. The inputs are validated
        here; the run this process executes is not validated again. A flow with a
        `concurrency:` limit gets its runs queued, with their key rendered from the inputs.
        """
        await self.access.require(caller, name, Permission.RUN)
        if idempotency_key is not None:
            existing = await self.repository.id_for_key(idempotency_key, name, caller.user_id)
            if existing is not None:
                return _Created(existing)
        self.limiter.take(caller)
        for _ in range(STALE_VERSION_ATTEMPTS):
            definition_id, number = await self._located(name, version)
            definition = await self.runner.definition(definition_id)
            values, concurrency = _checked_inputs(definition, inputs)
            created_at = utcnow()
            # /execute's run is created holding its lease; a queued run waits for a claim,
            # as every run of a flow with a concurrency limit does (the claim keeps it).
            holds = status is RunStatus.RUNNING and concurrency is None
            expires = created_at + timedelta(seconds=self.runner.lease_seconds) if holds else None
            run = NewRunRow(
                run_id=str(uuid.uuid4()),
                flow_name=name,
                definition_id=definition_id,
                status=RunStatus.RUNNING if holds else RunStatus.QUEUED,
                inputs=values,
                step_ids=[step.id for step in definition.steps],
                idempotency_key=idempotency_key,
                created_at=created_at,
                lease_owner=self.owner if holds else None,
                lease_expires_at=expires,
                latest_only=version is None,
                created_by=caller.user_id,
                traceparent=self.tracing.request_traceparent(traceparent),
                parent_run_id=None if parent is None else parent.run_id,
                parent_step_id=None if parent is None else parent.step_id,
                depth=0 if parent is None else parent.depth,
                priority=priority,
                concurrency=concurrency,
            )
            # A run executed here at once is created with its first progress (one commit
            # for a flow of pure steps); `execute` learns afterwards whether it was.
            later = self.repository.create_later(run) if holds and not awaited else None
            creation = Creation.CREATED if later is not None else await self.repository.create(run)
            if creation is Creation.CREATED:
                launch = Launch(run.run_id, definition_id, values, run.traceparent)
                return _Created(
                    run.run_id,
                    launch,
                    number,
                    created_at,
                    len(run.step_ids),
                    queued=not holds,
                    priority=priority,
                    concurrency=concurrency,
                    created_later=later,
                )
            if creation is Creation.KEY_TAKEN:  # lost the race to an identical request
                assert idempotency_key is not None
                existing = await self.repository.id_for_key(idempotency_key, name, caller.user_id)
                assert existing is not None
                return _Created(existing)
            self._versions.forget((name, version))  # stale: a version came or went
        raise ConflictError(f"flow {name!r} kept changing while a run was being started")

    async def _located(self, name: str, version: int | None) -> tuple[int, int]:
        """(id, version) of the flow's latest version (or of `version`), remembered."""
        return await self._versions.get(
            (name, version), functools.partial(self.repository.locate, name, version)
        )

    # Reading runs.

    async def read(self, caller: Caller, run_id: str, *, with_steps: bool = True) -> RunRecord:
        """The run, when the caller may see its flow (else UnknownRunError, as if it did not
        exist)."""
        record = await self.get(run_id, with_steps=with_steps)
        await self.access.require(caller, record.flow, Permission.VIEW, _no_run(run_id))
        return record

    async def get(self, run_id: str, *, with_steps: bool = True) -> RunRecord:
        record = await self.repository.get(run_id, with_steps=with_steps)
        if record is None:
            raise _no_run(run_id)
        return record

    async def task(self, caller: Caller, run_id: str, step_id: str, task_index: int) -> StepRecord:
        """One task of the run: its step (task_index 0), or one element of its fan-out."""
        await self.read(caller, run_id, with_steps=False)  # an unknown run is a 404 of its own
        found = await self.repository.task(run_id, step_id, task_index)
        if found is None:
            raise UnknownStepError(
                f"run {run_id} has no step {step_id!r} with task_index {task_index}"
            )
        return found

    async def task_logs(
        self,
        caller: Caller,
        run_id: str,
        step_id: str,
        task_index: int,
        attempt: int | None = None,
    ) -> list[AttemptLog]:
        """What one task logged, attempt by attempt (only `attempt`, when given); an attempt
        that logged nothing is listed with no lines."""
        task = await self.task(caller, run_id, step_id, task_index)
        kept = await self.repository.task_logs(run_id, step_id, task_index, attempt)
        logged = {log.attempt for log in kept}
        made = range(1, task.attempts + 1)
        wanted = made if attempt is None else [attempt] if attempt in made else []
        silent = [AttemptLog(number, ()) for number in wanted if number not in logged]
        return sorted([*kept, *silent], key=lambda log: log.attempt)

    async def list_runs(
        self,
        caller: Caller,
        *,
        flow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
        value_limit: int | None = None,
        parent: str | None = None,
    ) -> RunPage:
        """The runs of the flows the caller may see, newest first. `value_limit`: inputs
        and outputs larger than that (as the store keeps them) are left in the store
        (`OmittedValue`)."""
        cursors = await self._cursor_codec()
        after = cursors.decode(cursor) if cursor else None
        viewer = None if caller.acts_as_admin else caller.user_id
        found = await self.repository.page(
            flow=flow,
            status=status,
            limit=limit + 1,
            after=after,
            viewer=viewer,
            value_limit=value_limit,
            parent=parent,
        )
        items = found[:limit]
        more = len(found) > limit
        next_cursor = cursors.encode(items[-1].created_at, items[-1].run_id) if more else None
        return RunPage(tuple(items), next_cursor)

    async def _cursor_codec(self) -> CursorCodec:
        """The codec of run-list cursors, read from the store the first time it is needed."""
        if self._cursors is None:
            stored = await self.repository.cursor_secret()
            if stored is None:
                raise FlowManagerError("the store has no cursor key: run its migrations")
            self._cursors = CursorCodec(stored)
        return self._cursors

    async def fixture(self, caller: Caller, run_id: str, stubs: Sequence[str] = ()) -> Fixture:
        """A finished run as a fixture that replays it offline (`python -m app test`): its
        definition as registered, its inputs, the recorded outputs of the `stubs` steps, and
        its outcome as what is expected (the outputs, or the step that failed)."""
        record = await self.read(caller, run_id)
        if record.status not in (RunStatus.COMPLETED, RunStatus.FAILED):
            raise RunStateError(
                f"run {run_id} is {record.status.value}; only a completed or failed run "
                "becomes a fixture"
            )
        definition_id, _ = await self.repository.locate(record.flow, record.version)
        source, _ = await self.repository.source_of(definition_id)
        definition = await self.runner.definition(definition_id)
        recorded = previous_outcomes(definition, record.steps)
        stubbed: dict[str, Any] = {}
        for step_id in dict.fromkeys(stubs):
            outcome = recorded.get(step_id)
            if outcome is None or outcome.status is not TaskStatus.COMPLETED:
                if step_id in definition.dependencies:
                    reason = f"step {step_id!r} did not complete in run {run_id}"
                else:
                    reason = f"the run's flow has no step {step_id!r}"
                raise RequestError(
                    f"{reason}: only a completed step's outputs can be stubbed",
                    loc=("query", "stub"),
                )
            stubbed[step_id] = outcome.visible_outputs or {}
        expect: Expectation
        if record.status is RunStatus.COMPLETED:
            expect = ExpectedOutputs(record.outputs or {})
        else:
            expect = ExpectedFailure(record.error.step if record.error else None)
        return Fixture(source, record.inputs or {}, expect, stubbed)

    # Changing runs.

    async def cancel(self, caller: Caller, run_id: str) -> RunRecord:
        """Cancel a queued or running run, wherever it runs.

        Here, the engine records the cancellation as it unwinds. Elsewhere, the run is ended
        here and its worker is notified: it stops the run's steps (`Runner.stop_local`).
        """
        await self._require_run_permission(caller, run_id)
        record, changed = await self._cancelled(run_id)
        if not changed:
            raise RunStateError(
                f"run {run_id} is {record.status.value}; "
                "only queued or running runs can be cancelled"
            )
        return record

    async def _cancelled(self, run_id: str) -> tuple[RunRecord, bool]:
        """Cancel the run wherever it runs, then its active children (theirs too); the run,
        and whether this call ended it."""
        here = run_id in self.runner.in_flight
        if here:
            self.runner.stop_local(run_id)
            await self.runner.wait_for(run_id, 10)
        # Queued, running elsewhere, or not started yet.
        changed = await self.repository.end(run_id, RunStatus.CANCELLED, utcnow())
        record = await self.get(run_id)
        if self.metrics is not None and record.status is RunStatus.CANCELLED:
            self.metrics.run_cancelled(record.flow)
        for child in record.children:
            if child.status in ACTIVE_RUN_STATUSES:
                await self._cancelled(child.run_id)
        return await self.get(run_id), changed or here

    async def signal(self, caller: Caller, run_id: str, name: str, payload: Any) -> SentSignal:
        """Send the run a signal: a step waiting for `name` takes it, now or when it is
        reached (DESIGN.md section 9). 404 for a run the caller may not see, 409 once it has
        ended or holds MAX_SIGNALS_PER_RUN signals, 413 for a payload past
        MAX_SIGNAL_PAYLOAD_BYTES."""
        await self._require_run_permission(caller, run_id)
        limits = self.signal_limits
        try:
            kept = sized_json_data(payload, root="body", max_bytes=limits.max_payload_bytes)
        except ValueTooLargeError as error:
            raise PayloadTooLargeError(
                f"the signal's payload takes {'' if error.exact else 'at least '}{error.size} "
                f"bytes as JSON; MAX_SIGNAL_PAYLOAD_BYTES allows {limits.max_payload_bytes}"
            ) from None
        sent_at = utcnow()
        sending = await self.repository.send_signal(
            run_id, name, kept.value, sent_at, limits.max_signals_per_run
        )
        if sending is Sending.UNKNOWN_RUN:
            raise _no_run(run_id)
        if sending is Sending.RUN_ENDED:
            run = await self.get(run_id, with_steps=False)
            raise RunStateError(f"run {run_id} is {run.status.value}: it takes no more signals")
        if sending is Sending.TOO_MANY:
            raise QuotaExceededError(
                f"run {run_id} holds {limits.max_signals_per_run} signals already "
                "(setting MAX_SIGNALS_PER_RUN)"
            )
        if sending is Sending.WOKE:
            self.runner.work_available.set()
        return SentSignal(run_id, name, sent_at)

    async def retry(self, caller: Caller, run_id: str) -> RunRecord:
        """Run a failed or cancelled run again from its unfinished steps.

        The run is restarted with its count of steps to run again, as the engine will count
        them (`steps_run_again`), so that it never reads as running with none left."""
        run = await self.get(run_id)  # with its steps: which of them run again
        await self.access.require(caller, run.flow, Permission.RUN, _no_run(run_id))
        if run.status not in RETRYABLE_RUN_STATUSES:
            raise _not_retryable(run)
        definition_id, _ = await self.repository.locate(run.flow, run.version)
        definition = await self.runner.definition(definition_id)
        remaining = len(steps_run_again(definition, run.steps))
        claim = await self.repository.restart(
            run_id, utcnow(), self.runner.lease_seconds, remaining
        )
        if claim is None:  # retried (or deleted) by another request meanwhile
            raise _not_retryable(await self.get(run_id))
        self.runner.launch(Launch.of_claim(claim))
        return await self.get(run_id)

    async def fork(
        self,
        caller: Caller,
        run_id: str,
        from_step: str,
        *,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Mapping[str, Any]] | None = None,
        version: int | None = None,
        traceparent: str | None = None,
    ) -> StartedRun:
        """A new run of the source run's flow that keeps its completed steps not depending on
        `from_step` (their outputs patched by `outputs`), and runs the rest.

        It is created running under this process's lease, its kept tasks copied as they
        finished, and launched as a retried run is (`Launch` without inputs: the engine
        resumes it from its stored tasks); a crash before it ends hands it to another worker
        like any run. `inputs` replace the source's; `version`: default the source's."""
        source = await self.get(run_id)  # with its steps: those the fork keeps
        await self.access.require(caller, source.flow, Permission.RUN, _no_run(run_id))
        if not source.finished:
            raise RunStateError(
                f"run {run_id} is {source.status.value}; only a finished run can be forked"
            )
        self.limiter.take(caller)
        wanted = source.version if version is None else version
        definition_id, _ = await self.repository.locate(source.flow, wanted)
        definition = await self.runner.definition(definition_id)
        patches = {
            step_id: json_data(values, root=f"outputs.{step_id}")
            for step_id, values in (outputs or {}).items()
        }
        plan = plan_fork(definition, source.steps, from_step, patches)
        given = source.inputs or {} if inputs is None else inputs
        values = json_data(
            validate_inputs(definition.inputs, given, strict=definition.strict_inputs),
            root="inputs",
        )
        created_at = utcnow()
        run = NewRunRow(
            run_id=str(uuid.uuid4()),
            flow_name=source.flow,
            definition_id=definition_id,
            status=RunStatus.RUNNING,
            inputs=values,
            step_ids=plan.steps_to_run,
            idempotency_key=None,
            created_at=created_at,
            lease_owner=self.owner,
            lease_expires_at=created_at + timedelta(seconds=self.runner.lease_seconds),
            created_by=caller.user_id,
            traceparent=self.tracing.request_traceparent(traceparent),
            forked_from=run_id,
            kept_tasks=plan.kept_tasks,
        )
        if await self.repository.create(run) is not Creation.CREATED:
            raise ConflictError(f"version {wanted} of flow {source.flow!r} was deleted meanwhile")
        self.runner.launch(Launch(run.run_id, definition_id, None, run.traceparent))
        return StartedRun(await self.get(run.run_id, with_steps=False), created=True)

    async def diff(self, caller: Caller, a: str, b: str) -> RunDiff:
        """What differs between two runs the caller may both see, step by step."""
        first = await self.read(caller, a)
        second = await self.read(caller, b)
        return diff_runs(first, second)

    async def _require_run_permission(self, caller: Caller, run_id: str) -> None:
        """404 when the caller may not see the run's flow, 403 when it may but not run it."""
        run = await self.get(run_id, with_steps=False)
        await self.access.require(caller, run.flow, Permission.RUN, _no_run(run_id))


@dataclass(frozen=True)
class RunToStart:
    """One run of a batch (`POST /flows/{name}/runs` with `runs`)."""

    inputs: Mapping[str, Any]
    priority: int = 0


def _checked_inputs(
    definition: FlowDefinition, inputs: Mapping[str, Any]
) -> tuple[Any, RunConcurrency | None]:
    """The run's inputs as stored (validated, defaults applied), and its concurrency key."""
    values = json_data(
        validate_inputs(definition.inputs, inputs, strict=definition.strict_inputs),
        root="inputs",
    )
    limit = definition.concurrency
    if limit is None:
        return values, None
    return values, RunConcurrency.of(definition.name, limit.key_for(values), limit.limit)


@contextlib.contextmanager
def _at(prefix: Loc) -> Iterator[None]:
    """Problems of inputs raised inside, placed under `prefix` (a batch's run)."""
    try:
        yield
    except InputValidationError as error:
        problems = [replace(problem, loc=(*prefix, *problem.loc)) for problem in error.problems]
        raise InputValidationError(problems) from None
    except UnstorableValueError as error:
        raise UnstorableValueError(
            error.message, loc=(*prefix, *error.loc), path=error.path, reason=error.reason
        ) from None


def _queued(row: NewRunRow, version: int, created_by: str) -> RunRecord:
    """A run of a batch, as it was written."""
    return RunRecord(
        run_id=row.run_id,
        flow=row.flow_name,
        version=version,
        status=RunStatus.QUEUED,
        inputs=row.inputs,
        outputs=None,
        error=None,
        remaining_steps=len(row.step_ids),
        created_at=row.created_at,
        started_at=None,
        finished_at=None,
        created_by=created_by,
        priority=row.priority,
    )


@dataclass(frozen=True)
class ParentStep:
    """The parent run and step of a child run, and the child's depth."""

    run_id: str
    step_id: str
    depth: int


@dataclass(frozen=True)
class SignalLimits:
    max_signals_per_run: int = 1000  # MAX_SIGNALS_PER_RUN
    max_payload_bytes: int = 256 * 1024  # MAX_SIGNAL_PAYLOAD_BYTES


@dataclass(frozen=True)
class _Created:
    run_id: str
    launch: Launch | None = None  # set when this call created the run
    version: int = 0
    created_at: datetime | None = None
    steps: int = 0
    queued: bool = False  # created queued: a claim starts it
    priority: int = 0
    concurrency: RunConcurrency | None = None
    # Its `Creation` once committed, when the store creates it with its first progress.
    created_later: Awaitable[Creation] | None = None

    @property
    def created(self) -> bool:
        return self.launch is not None

    def as_created(self, flow: str, status: RunStatus, created_by: str) -> RunRecord:
        """The run this call created, as it was written."""
        assert self.launch is not None
        assert self.created_at is not None
        limit = self.concurrency
        return RunRecord(
            run_id=self.run_id,
            flow=flow,
            version=self.version,
            status=status,
            inputs=self.launch.inputs,
            outputs=None,
            error=None,
            remaining_steps=self.steps,
            created_at=self.created_at,
            started_at=None,
            finished_at=None,
            created_by=created_by,
            priority=self.priority,
            concurrency_key=None if limit is None else shown_key(flow, limit.stored_key),
            concurrency_limit=None if limit is None else limit.limit,
        )

    def finished(self, result: RunResult, created_by: str) -> RunRecord:
        """The run this call created, as it finished."""
        return replace(
            self.as_created(result.flow, result.status, created_by),
            outputs=result.outputs,
            error=result.error,
            remaining_steps=0,
            started_at=result.started_at,
            finished_at=result.finished_at,
        )


def _not_retryable(run: RunRecord) -> RunStateError:
    return RunStateError(
        f"run {run.run_id} is {run.status.value}; only failed or cancelled runs can be retried"
    )


def _no_run(run_id: str) -> UnknownRunError:
    return UnknownRunError(f"no run has the id {run_id!r}")

"""`Runner`: this process's runs in flight, executed to their end under their leases.

It launches the runs this process created (`/execute`) or claimed from the queue (`claim`),
renews their leases (`renew_leases`, from the heartbeat), stops those it lost
(`stop_local`) and, on shutdown, hands the unfinished ones over to other workers. If this
process dies, another worker takes its runs over and finishes them from the steps that had
finished (`FlowExecutor.resume`). It owns the process's one cache of parsed definitions.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cachetools import LRUCache

from app.domain.clock import utcnow
from app.domain.records import Claim
from app.domain.runs import RunError, RunStatus
from app.dsl.models import FlowDefinition
from app.engine.executor import FlowExecutor
from app.engine.run import RunResult
from app.errors import LeaseLostError, StoreUnavailableError
from app.services.elements import SharedElements
from app.services.loading_cache import LoadingCache
from app.services.observability import logs
from app.services.observability.metrics import Metrics
from app.services.observability.traces import NO_TRACING, Tracing
from app.services.ports import RunRepository

logger = logging.getLogger(__name__)

DEFINITION_CACHE_SIZE = 256


@dataclass(frozen=True)
class Launch:
    """A run to execute here, its lease held here. `inputs`: a new run's inputs, validated
    when the run was created (by whichever process created it: the store keeps them as
    validated, defaults included), so never again; None: the run ran before (taken over, or
    retried) and resumes from what the store kept."""

    run_id: str
    definition_id: int
    inputs: Mapping[str, Any] | None = None
    traceparent: str | None = None  # the request that started it: its spans link there
    limited: bool = False  # it has a concurrency key: its end frees a slot of the key

    @classmethod
    def of_claim(cls, claim: Claim) -> Launch:
        inputs = None if claim.taken_over else claim.inputs
        return cls(claim.run_id, claim.definition_id, inputs, claim.traceparent, claim.limited)


class Runner:
    def __init__(
        self,
        repository: RunRepository,
        executor: FlowExecutor,
        *,
        lease_seconds: float,
        metrics: Metrics | None = None,
        tracing: Tracing = NO_TRACING,
        element_batch: int = 100,
    ) -> None:
        """`metrics`: where runs are counted (none in unit tests); `tracing`: a span per
        run; `element_batch`: elements of shared fan-outs claimed (and run) at once here."""
        self.repository = repository
        self.metrics = metrics
        self.tracing = tracing
        self.executor = executor
        self.lease_seconds = lease_seconds
        self.in_flight: dict[str, asyncio.Task[RunResult | None]] = {}
        self.work_available = asyncio.Event()  # wakes the worker loop
        self.worker_saturated = False  # the worker left queued work for want of a free slot
        self._limited: set[str] = set()  # runs in flight with a concurrency key
        self._definitions = LoadingCache[int, FlowDefinition](LRUCache(DEFINITION_CACHE_SIZE))
        # This process's part of the shared fan-outs: elements any worker may claim.
        self.elements = SharedElements(
            repository,
            executor,
            self.definition,
            lease_seconds=lease_seconds,
            capacity=element_batch,
            work_available=self.work_available,
        )

    async def claim(self, limit: int) -> int:
        """Claim up to `limit` queued runs, or runs whose worker died, and launch them here;
        how many."""
        claims = await self.repository.claim(utcnow(), self.lease_seconds, limit)
        for claim in claims:
            if claim.taken_over and not claim.woken:
                logger.info("run %s: its worker's lease expired; taking it over", claim.run_id)
                if self.metrics is not None:
                    self.metrics.takeovers.inc()
            self.launch(Launch.of_claim(claim))
        return len(claims)

    def launch(self, launch: Launch) -> asyncio.Task[RunResult | None]:
        """Execute the run in a task of this process."""
        run_id = launch.run_id
        task = asyncio.create_task(self._execute(launch), name=f"run-{run_id}")
        self.in_flight[run_id] = task
        if launch.limited:
            self._limited.add(run_id)
        task.add_done_callback(lambda _: self._landed(run_id))
        return task

    async def wait_for(self, run_id: str, seconds: float) -> None:
        """Wait up to `seconds` for the run, if it runs here."""
        task = self.in_flight.get(run_id)
        if task is not None:
            await asyncio.wait({task}, timeout=max(0.0, seconds))

    def stop_local(self, run_id: str) -> None:
        """Stop the run's execution here, if it runs here (it was cancelled or taken over
        elsewhere); its store writes are refused, so it records nothing more."""
        task = self.in_flight.get(run_id)
        if task is not None:
            task.cancel()

    async def definition(self, definition_id: int) -> FlowDefinition:
        """The parsed definition of a stored version (versions never change: cached by id).

        Loaded once however many runs ask at the same moment: a worker that claims 100 runs
        of a new version reads it once, not on 100 connections (`LoadingCache`).
        """
        return await self._definitions.get(
            definition_id, functools.partial(self._load_definition, definition_id)
        )

    # Leases and lifecycle.

    async def renew_leases(self) -> None:
        """Extend the leases of the runs running here; stop those this process lost."""
        lost = await self.repository.renew(list(self.in_flight), utcnow(), self.lease_seconds)
        for run_id in lost:
            logger.info("run %s: no longer held here (cancelled or taken over)", run_id)
            self.stop_local(run_id)
        await self.elements.renew()

    async def resume_interrupted(self) -> int:
        """A single-process store at start: the runs it left running resume at once (their
        leases were this process's, before it stopped); how many."""
        count = await self.repository.expire_all(utcnow())
        if count:
            self.work_available.set()
        return count

    async def shutdown(self, grace: float) -> None:
        """Let in-flight runs finish for `grace` seconds; release the others' leases, so
        another worker takes them over at once, and stop them here. Elements of shared
        fan-outs get the same grace, and the same release."""
        elements = asyncio.create_task(self.elements.shutdown(grace))
        tasks = list(self.in_flight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        unfinished = dict(self.in_flight)
        if not unfinished:
            await elements
            return
        try:
            await self.repository.release(list(unfinished), utcnow())
        except Exception:  # the store is down: the leases expire by themselves
            logger.exception("releasing %d unfinished run(s) failed", len(unfinished))
        for task in unfinished.values():
            task.cancel()
        await asyncio.wait(unfinished.values())
        logger.info("released %d unfinished run(s) to other workers", len(unfinished))
        await elements

    def _landed(self, run_id: str) -> None:
        self.in_flight.pop(run_id, None)
        limited = run_id in self._limited
        self._limited.discard(run_id)
        # A slot is free for the queued work the worker had to leave; or a slot of the run's
        # concurrency key is, and a run of it may wait (the claim passed it over).
        if self.worker_saturated or limited:
            self.work_available.set()

    async def _execute(self, launch: Launch) -> RunResult | None:
        """Run to the end; the result, or None when the run could not be executed.

        Its own asyncio task (`launch`): what it binds for the logs ends with it."""
        logs.bind(run_id=launch.run_id)
        metrics = self.metrics
        if metrics is None:
            return await self._execute_run(launch)
        metrics.run_launched()
        began = time.perf_counter()
        result = None
        try:
            result = await self._execute_run(launch)
        finally:
            if result is None or result.parked:  # handed over, to whoever resumes it
                metrics.run_landed(None, None, 0)
            else:
                metrics.run_landed(result.flow, result.status, time.perf_counter() - began)
        return result

    async def _execute_run(self, launch: Launch) -> RunResult | None:
        run_id = launch.run_id
        try:
            definition = await self.definition(launch.definition_id)
            logs.bind(flow=definition.name)
            if self.metrics is not None:
                self.metrics.run_started(definition.name)
            return await self._traced(definition, launch)
        except asyncio.CancelledError:
            raise
        except LeaseLostError:
            logger.info("run %s: lease lost; its new owner (or its end) stands", run_id)
            return None
        except StoreUnavailableError as error:  # down or overloaded: try again later
            logger.warning("run %s: the store failed (%r); handing it over", run_id, error)
            await self._give_up(run_id)
            return None
        except Exception as error:  # the store refused what was asked, or the definition broke
            logger.exception("run %s could not be executed", run_id)
            await self._mark_failed(run_id, error)
            return None

    async def _traced(self, definition: FlowDefinition, launch: Launch) -> RunResult:
        """Execute the run in its span."""
        traced = self.tracing.run_started(launch.run_id, definition.name, launch.traceparent)
        result = None
        try:
            if launch.inputs is None:
                result = await self.executor.resume(definition, launch.run_id)
            else:
                result = await self.executor.run_checked(definition, launch.inputs, launch.run_id)
            if result.parked_until is not None:
                self._wake_at(result.parked_until)
            elif result.parked:  # perhaps on its shared fan-out: claim its elements now
                self.elements.wake()
            return result
        finally:
            self.tracing.run_ended(traced, None if result is None else result.status)

    def _wake_at(self, moment: datetime) -> None:
        """Look for work when a run parked here wakes: any process may resume it, and those
        that poll find it within POLL_INTERVAL; this one is on time."""
        delay = max(0.0, (moment - utcnow()).total_seconds())
        asyncio.get_running_loop().call_later(delay, self.work_available.set)

    async def _give_up(self, run_id: str) -> None:
        """Release the run's lease, so a worker takes it over (from its finished steps) once
        the store answers again; if it does not answer now, the lease expires by itself."""
        try:
            await self.repository.release([run_id], utcnow())
        except Exception as error:
            logger.warning("run %s: releasing it failed too (%r)", run_id, error)

    async def _mark_failed(self, run_id: str, error: Exception) -> None:
        failure = RunError(None, type(error).__name__, str(error) or type(error).__name__)
        try:
            await self.repository.end(run_id, RunStatus.FAILED, utcnow(), failure)
        except Exception:  # the run stays running; its lease expires and it is taken over
            logger.exception("run %s: recording its failure failed", run_id)

    async def _load_definition(self, definition_id: int) -> FlowDefinition:
        source, format = await self.repository.source_of(definition_id)
        parsed = await asyncio.to_thread(  # off the event loop: it may be large
            self.executor.parse, source, format=format
        )
        return parsed.definition

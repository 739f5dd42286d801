"""`SharedElements`: this process's part of the shared fan-outs (pgflow's model: a fan-out's
elements are claimable by any worker).

The claim loop asks it to claim elements in batches (`claim`, up to `capacity` at once in the
process besides its runs); each element runs in a task of its own (`ElementRunner`), and the
ends are recorded in batches: whatever ended while the last batch was committing is committed
by the next one, so a worker running many short elements commits a handful of times, not once
per element. Each element is leased to this worker: the heartbeat renews the leases of those
claimed and not yet recorded (`renew`), and an element whose lease another worker took over,
or whose run or fan-out ended meanwhile, is stopped here and records nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from app.domain.clock import utcnow
from app.domain.elements import ClaimedElement, ElementFinish, ElementWork
from app.domain.runs import RunError, TaskStatus
from app.dsl.models import FlowDefinition
from app.engine.executor import FlowExecutor
from app.services.ports import RunRepository

logger = logging.getLogger(__name__)


class SharedElements:
    def __init__(
        self,
        repository: RunRepository,
        executor: FlowExecutor,
        definition: Callable[[int], Awaitable[FlowDefinition]],
        *,
        lease_seconds: float,
        capacity: int,
        work_available: asyncio.Event,
    ) -> None:
        """`definition`: the process's cache of parsed versions (`Runner.definition`);
        `capacity`: elements claimed at once at most; `work_available`: set when recorded
        ends free room (and may have woken a run)."""
        self.repository = repository
        self.executor = executor
        self.definition = definition
        self.lease_seconds = lease_seconds
        self.capacity = capacity
        self.work_available = work_available
        self.held: dict[int, asyncio.Task[None]] = {}  # claimed, end not yet recorded
        self._ended: list[ElementFinish] = []
        self._recording: asyncio.Task[None] | None = None
        # Whether elements may be waiting (a fan-out was shared, or the last claim was full):
        # else the store is asked once per poll only, so that a worker's loop of claims (one
        # per run it finishes) pays nothing for fan-outs when there are none.
        self._maybe = True
        self._next_poll = 0.0

    @property
    def backlog(self) -> bool:
        """Whether more elements may be waiting than the last claim had room for."""
        return self._maybe

    def wake(self) -> None:
        """A fan-out was shared (here, or elsewhere: a notification): claim at once."""
        self._maybe = True
        self.work_available.set()

    async def claim(self, poll_interval: float) -> int:
        """Claim elements up to the free room and start them here; how many. Without a
        reason to think some wait, the store is asked once per `poll_interval` (which also
        finds the elements of a dead worker once their leases expired)."""
        free = self.capacity - len(self.held)
        if free <= 0:
            return 0
        now = time.monotonic()
        if not self._maybe and now < self._next_poll:
            return 0
        self._next_poll = now + poll_interval
        works = await self.repository.claim_elements(utcnow(), self.lease_seconds, free)
        count = 0
        for work in works:
            for element in work.elements:
                task = asyncio.create_task(
                    self._run(work, element), name=f"element-{element.task_id}"
                )
                self.held[element.task_id] = task
                count += 1
        self._maybe = count >= free  # a full batch: more may wait
        return count

    async def renew(self) -> None:
        """Extend the leases of the elements held here; stop those lost."""
        if not self.held:
            return
        lost = await self.repository.renew_elements(list(self.held), utcnow(), self.lease_seconds)
        for task_id in lost:
            task = self.held.pop(task_id, None)
            if task is not None:
                logger.info("element %d: no longer held here (taken over, or cancelled)", task_id)
                task.cancel()

    async def shutdown(self, grace: float) -> None:
        """Let the elements running here end for `grace` seconds and record what ended; the
        others' leases are given up, so another worker takes them over at once, and they are
        stopped here."""
        running = [task for task in self.held.values() if not task.done()]
        if running:
            await asyncio.wait(running, timeout=grace)
        unfinished = [task_id for task_id, task in self.held.items() if not task.done()]
        if unfinished:
            try:
                await self.repository.release_elements(unfinished, utcnow())
            except Exception:  # the store is down: the leases expire by themselves
                logger.exception("releasing %d unfinished element(s) failed", len(unfinished))
            else:
                logger.info("released %d unfinished element(s) to other workers", len(unfinished))
        for task in self.held.values():
            task.cancel()
        await self._record_ended()

    async def _run(self, work: ElementWork, element: ClaimedElement) -> None:
        try:
            definition = await self.definition(work.definition_id)
            step = definition.step(work.step_id)
            runner = self.executor.element_runner(definition, work.run_id)
            outcome, attempts = await runner.run_element(step, work, element)
            status, outputs, error = outcome.status, outcome.outputs, outcome.error
        except asyncio.CancelledError:
            self.held.pop(element.task_id, None)
            raise
        except Exception as exception:  # a broken definition, say: the element fails
            logger.exception("element %d of run %s failed to run", element.index, work.run_id)
            message = f"element {element.index}: {exception}"
            status, outputs, attempts = TaskStatus.FAILED, None, 1
            error = RunError(work.step_id, type(exception).__name__, message)
        self._ended.append(
            ElementFinish(
                work.run_id,
                work.step_id,
                element.task_id,
                element.index,
                status,
                outputs,
                error,
                attempts,
                utcnow(),
            )
        )
        if self._recording is None or self._recording.done():
            self._recording = asyncio.create_task(self._record_ended(), name="element-ends")

    async def _record_ended(self) -> None:
        """Commit the ends gathered so far, then those gathered meanwhile, until none is
        left (group commit)."""
        while self._ended:
            batch, self._ended = self._ended, []
            try:
                await self.repository.finish_elements(batch)
            except Exception:  # the store failed: the leases expire, another worker retakes
                logger.exception("recording %d element end(s) failed", len(batch))
            for ended in batch:
                self.held.pop(ended.task_id, None)
            # Room here, and in the fan-outs' `max_concurrency`: claim more (and perhaps the
            # run these ends woke).
            self._maybe = True
            self.work_available.set()

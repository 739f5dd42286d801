"""`ClaimLoop`: claims runs for this process's `Runner`, in the API (embedded) or in a
standalone worker (`standalone.py`).

It wakes when a run is queued (a notification from any process on PostgreSQL, or a run queued
here) or a slot frees up, and polls every `poll_interval` seconds all the same: the poll is
what finds runs whose worker died once their lease has expired. At most `concurrency` runs
execute at once in the process (including `/execute` runs).

How often a busy worker claims decides how much each claim, and each group commit after it,
gathers. Under a stream of submissions every commit of the API notifies, so each worker would
otherwise claim a run or two at a time, one transaction each: with two workers that doubled
the claims' work and took the CPU the API needed (end to end, 2 workers did fewer runs/s than
1). So:

- a claim that drained the queue (took fewer runs than it had slots) is followed by a pause
  of `claim_interval` (30 ms) times the number of live workers that claim (`claimers`, counted
  on each heartbeat), gathering what arrives meanwhile into the next claim: however many
  workers share the queue, it is claimed about as often as by one, each claim as large. With
  10 ms, two workers made 3.5 times the claims of one, 44% of them empty; with 30 ms each, two
  workers made 2.8 times the claims of one, each a third as large, and the end-to-end
  benchmark lost 10-20% of its throughput to them;
- a claim that filled every slot leaves a backlog: the next comes as soon as half the slots
  are free again, not a run at a time as each one ends, and not held back by the pause (so
  does a full batch of a shared fan-out's elements: the next claim follows the recording of
  their ends);
- a claim that found nothing is followed by none until work is announced (or the poll): an
  idle worker claims a lone run as soon as it is told of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from app.background import stop_task
from app.services.runner import Runner

logger = logging.getLogger(__name__)


class ClaimLoop:
    def __init__(
        self,
        runner: Runner,
        *,
        concurrency: int,
        poll_interval: float,
        claim_interval: float = 0.0,
        claimers: Callable[[], int] = lambda: 1,
    ) -> None:
        """`claimers`: the live workers that claim queued runs, this one included."""
        self.runner = runner
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.claim_interval = claim_interval
        self.claimers = claimers
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._run_forever(), name="worker")

    async def stop(self) -> None:
        """Stop claiming (the runs in flight go on; `Runner.shutdown` drains them)."""
        await stop_task(self._loop)
        self._loop = None

    async def _run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.runner.work_available.clear()
            claimed_at = loop.time()
            claimed = 0
            try:
                claimed = await self.claim()
            except Exception:  # a database hiccup must not kill the loop
                logger.exception("claiming runs failed")
            # Not `asyncio.wait_for`: on Python 3.11 it drops a cancellation that arrives as the
            # event is set (stopping the loop then hung); `asyncio.timeout` keeps it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self.runner.work_available.wait()
            if not claimed:  # an idle worker claims at once when told of work
                continue
            if self.runner.worker_saturated or self.runner.elements.backlog:
                # A backlog: claim as half the slots free up (or, for a fan-out's elements,
                # as their ends are recorded).
                await self._slots_freed(self.concurrency // 2)
            else:  # the queue drained: let what comes next gather into one claim
                await asyncio.sleep(claimed_at + self._pause() - loop.time())

    def _pause(self) -> float:
        """After a claim that drained the queue: the claim interval of each claiming worker,
        so that together they claim as often as one would."""
        return self.claim_interval * max(1, self.claimers())

    async def _slots_freed(self, wanted: int) -> None:
        """Wait for `wanted` free slots, or the poll interval."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_interval):
                while self.concurrency - len(self.runner.in_flight) < wanted:
                    self.runner.work_available.clear()
                    await self.runner.work_available.wait()

    async def claim(self) -> int:
        """Claim as many runs as there are free slots, and elements of shared fan-outs as
        there is room for (`SharedElements`); how many were claimed."""
        elements = await self.runner.elements.claim(self.poll_interval)
        free = self.concurrency - len(self.runner.in_flight)
        if free <= 0:
            self.runner.worker_saturated = True
            return elements
        claimed = await self.runner.claim(free)
        # Every slot taken: more may be waiting, so a finishing run should wake the worker.
        self.runner.worker_saturated = claimed >= free
        return claimed + elements

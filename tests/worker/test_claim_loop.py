"""The worker loop's pace: claims gather what a stream of submissions queued meanwhile, and an
idle worker claims a lone run at once."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from app.services.runner import Runner
from app.worker.claim_loop import ClaimLoop
from tests.polling import until


class NoSharedElements:
    backlog = False

    async def claim(self, poll_interval: float) -> int:
        return 0


class Queue:
    """A runner whose claims find `found[i]` runs (then one each time), each followed by a
    notification (a commit of the API) when it found some: a stream of submissions."""

    def __init__(self, *found: int) -> None:
        self.in_flight: dict[str, Any] = {}
        self.work_available = asyncio.Event()
        self.worker_saturated = False
        self.claimed_at: list[float] = []
        self.found = list(found)
        self.elements = NoSharedElements()

    async def claim(self, limit: int) -> int:
        loop = asyncio.get_running_loop()
        self.claimed_at.append(loop.time())
        found = self.found.pop(0) if self.found else 1
        if found:
            loop.call_soon(self.work_available.set)
        return found


async def test_claims_under_a_stream_of_submissions_are_at_least_the_interval_apart() -> None:
    runner = Queue()
    worker = ClaimLoop(cast(Runner, runner), concurrency=10, poll_interval=60, claim_interval=0.05)
    await worker.start()
    try:
        await until(lambda: len(runner.claimed_at) >= 4)
    finally:
        await worker.stop()

    gaps = [b - a for a, b in zip(runner.claimed_at, runner.claimed_at[1:], strict=False)]
    assert min(gaps) >= 0.049


async def test_each_of_two_claiming_workers_pauses_two_claim_intervals() -> None:
    # Together they claim the stream as often as one worker would, in batches as large.
    runner = Queue()
    worker = ClaimLoop(
        cast(Runner, runner),
        concurrency=10,
        poll_interval=60,
        claim_interval=0.05,
        claimers=lambda: 2,
    )
    await worker.start()
    try:
        await until(lambda: len(runner.claimed_at) >= 3)
    finally:
        await worker.stop()

    gaps = [b - a for a, b in zip(runner.claimed_at, runner.claimed_at[1:], strict=False)]
    assert min(gaps) >= 0.099


async def test_an_idle_worker_claims_a_lone_run_as_soon_as_it_is_told() -> None:
    runner = Queue(0)  # the first claim finds nothing
    worker = ClaimLoop(cast(Runner, runner), concurrency=10, poll_interval=60, claim_interval=30)
    await worker.start()
    try:
        await until(lambda: len(runner.claimed_at) == 1)
        runner.work_available.set()  # a run is queued, well within 30 s of the last claim

        await until(lambda: len(runner.claimed_at) == 2, deadline=5)
    finally:
        await worker.stop()


class Backlog(Queue):
    """A runner with more queued runs than slots: every claim takes each free slot."""

    async def claim(self, limit: int) -> int:
        self.claimed_at.append(asyncio.get_running_loop().time())
        for _ in range(limit):
            self.in_flight[f"run-{len(self.in_flight)}-{len(self.claimed_at)}"] = None
        return limit

    def finish_one(self) -> None:
        """A run ends and wakes the saturated worker, as `Runner._landed` does."""
        self.in_flight.popitem()
        self.work_available.set()


async def test_a_saturated_worker_claims_again_once_half_its_slots_are_free() -> None:
    """Not a run at a time as each one ends, and not held back by the claim interval: a
    backlog is waiting."""
    runner = Backlog()
    worker = ClaimLoop(cast(Runner, runner), concurrency=4, poll_interval=60, claim_interval=30)
    await worker.start()
    try:
        await until(lambda: len(runner.claimed_at) == 1 and len(runner.in_flight) == 4)
        runner.finish_one()
        await asyncio.sleep(0.05)  # the worker had its chance to claim the lone free slot
        assert len(runner.claimed_at) == 1

        runner.finish_one()

        await until(lambda: len(runner.claimed_at) == 2, deadline=5)
        assert len(runner.in_flight) == 4  # both slots taken in one claim
    finally:
        await worker.stop()


class FullElementBatches:
    """A shared fan-out with more elements than a claim has room for."""

    backlog = True

    async def claim(self, poll_interval: float) -> int:
        return 100


async def test_a_full_batch_of_elements_is_followed_by_the_next_claim_as_their_ends_land() -> None:
    """Not held back by the pause that gathers runs: a 10,000-element fan-out would wait it
    at every batch."""
    runner = Queue(0)  # no run queued: only the elements
    runner.elements = FullElementBatches()  # type: ignore[assignment]
    worker = ClaimLoop(cast(Runner, runner), concurrency=10, poll_interval=60, claim_interval=30)
    await worker.start()
    try:
        await until(lambda: len(runner.claimed_at) == 1)
        runner.work_available.set()  # the elements' ends were recorded

        await until(lambda: len(runner.claimed_at) >= 2, deadline=5)
    finally:
        await worker.stop()

"""Priority and concurrency limits in the claim, on every run store (DESIGN.md section 9)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.concurrency import RunConcurrency
from app.domain.runs import RunStatus
from tests.store.contract.conftest import LEASE, T0, Stores, new_run


class Queue:
    """Queued runs of flows "f" and "g" in one store, created a second apart."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.api = stores.of("api")
        self.versions: dict[str, int] = {}
        self.owner: str | None = None
        self.count = 0

    async def add(
        self,
        run_id: str,
        *,
        flow: str = "f",
        priority: int = 0,
        key: str | None = None,
        limit: int | None = None,
    ) -> str:
        if self.owner is None:
            self.owner = await self.stores.user("u1")
        if flow not in self.versions:
            self.versions[flow] = await self.stores.flow(flow, self.owner)
        concurrency = None if limit is None else RunConcurrency.of(flow, key, limit)
        created_at = T0 + timedelta(seconds=self.count)
        self.count += 1
        run = new_run(
            run_id,
            self.versions[flow],
            flow=flow,
            created_at=created_at,
            priority=priority,
            concurrency=concurrency,
        )
        await self.api.create(run)
        return run_id

    async def claim(self, limit: int = 10, owner: str = "w1") -> list[str]:
        return [claim.run_id for claim in await self.stores.of(owner).claim(T0, LEASE, limit)]

    async def finish(self, run_id: str) -> None:
        assert await self.api.end(run_id, RunStatus.CANCELLED, T0)


async def test_queued_runs_are_claimed_by_priority_then_oldest_first(stores: Stores) -> None:
    queue = Queue(stores)
    for run_id, priority in [("low", -5), ("first", 0), ("urgent", 10), ("second", 0)]:
        await queue.add(run_id, priority=priority)

    assert await queue.claim(3) == ["urgent", "first", "second"]
    assert await queue.claim(3) == ["low"]


async def test_at_most_limit_runs_of_a_key_run_at_once(stores: Stores) -> None:
    queue = Queue(stores)
    for index in range(4):
        await queue.add(f"run-{index}", limit=2)

    assert await queue.claim(10) == ["run-0", "run-1"]
    assert await queue.claim(10, owner="w2") == []  # another worker: still full


async def test_a_key_freed_by_a_finished_run_takes_its_oldest_queued_run(stores: Stores) -> None:
    queue = Queue(stores)
    for index in range(4):
        await queue.add(f"run-{index}", limit=2)
    await queue.claim(10)

    await queue.finish("run-1")

    assert await queue.claim(10) == ["run-2"]


async def test_priority_orders_the_queue_within_a_key(stores: Stores) -> None:
    queue = Queue(stores)
    await queue.add("old", limit=1)
    await queue.add("older-waiting", limit=1)
    await queue.add("urgent", limit=1, priority=5)

    assert await queue.claim(10) == ["urgent"]


async def test_each_key_of_a_flow_has_its_own_limit(stores: Stores) -> None:
    queue = Queue(stores)
    for tenant in ("acme", "acme", "beta", "beta"):
        await queue.add(f"{tenant}-{queue.count}", key=tenant, limit=1)

    assert await queue.claim(10) == ["acme-0", "beta-2"]


async def test_keys_belong_to_their_flow(stores: Stores) -> None:
    queue = Queue(stores)
    await queue.add("f-run", flow="f", key="shared", limit=1)
    await queue.add("g-run", flow="g", key="shared", limit=1)

    assert await queue.claim(10) == ["f-run", "g-run"]


async def test_a_full_key_backlog_does_not_hold_back_runs_behind_it(stores: Stores) -> None:
    queue = Queue(stores)
    for index in range(30):
        await queue.add(f"busy-{index}", limit=1)
    await queue.add("other", flow="g")
    await queue.add("other-limited", flow="g", key="k", limit=5)

    assert await queue.claim(5) == ["busy-0", "other", "other-limited"]
    assert await queue.claim(5, owner="w2") == []  # busy is full; nothing else waits


async def test_two_keys_both_progress_however_long_one_queue_is(stores: Stores) -> None:
    queue = Queue(stores)
    for index in range(60):
        await queue.add(f"big-{index}", key="big", limit=2)
    for index in range(3):
        await queue.add(f"small-{index}", key="small", limit=2)

    first = await queue.claim(10)
    await queue.finish("big-0")
    await queue.finish("small-0")
    second = await queue.claim(10, owner="w2")

    assert first == ["big-0", "big-1", "small-0", "small-1"]
    assert second == ["big-2", "small-2"]


async def test_runs_without_a_limit_are_never_held_back(stores: Stores) -> None:
    queue = Queue(stores)
    for index in range(3):
        await queue.add(f"limited-{index}", limit=1)
        await queue.add(f"free-{index}", flow="g")

    assert await queue.claim(10) == ["limited-0", "free-0", "free-1", "free-2"]


@pytest.mark.parametrize("limit", [10, 3])
async def test_runs_before_and_after_a_keyed_run_are_claimed_in_order_within_the_limit(
    stores: Stores, limit: int
) -> None:
    """PostgreSQL claims the runs before the first keyed one in one statement, and leaves
    the rest to the claim that counts keys: one claim all the same."""
    queue = Queue(stores)
    await queue.add("free-0", flow="g")
    await queue.add("free-1", flow="g")
    for index in range(2):
        await queue.add(f"limited-{index}", limit=1)
    await queue.add("free-2", flow="g")

    claimed = await queue.claim(limit)

    assert claimed == ["free-0", "free-1", "limited-0", "free-2"][:limit]


async def test_a_run_shows_its_priority_and_concurrency(stores: Stores) -> None:
    queue = Queue(stores)
    await queue.add("keyed", key="acme", limit=3, priority=7)
    await queue.add("default-key", limit=2)
    await queue.add("plain")

    keyed = await queue.api.get("keyed")
    default_key = await queue.api.get("default-key")
    plain = await queue.api.get("plain")

    assert keyed is not None
    assert default_key is not None
    assert plain is not None
    assert (keyed.priority, keyed.concurrency_key, keyed.concurrency_limit) == (7, "acme", 3)
    assert (default_key.concurrency_key, default_key.concurrency_limit) == ("f", 2)
    assert (plain.priority, plain.concurrency_key, plain.concurrency_limit) == (0, None, None)


async def test_a_run_created_running_keeps_its_priority_and_counts_against_its_key(
    stores: Stores,
) -> None:
    # PostgreSQL creates a running run (/execute's) in one statement of its own (PG_CREATE).
    queue = Queue(stores)
    await queue.add("queued", limit=1)
    running = new_run(
        "running",
        queue.versions["f"],
        owner="w0",
        priority=3,
        concurrency=RunConcurrency.of("f", None, 1),
    )
    await queue.api.create(running)

    record = await queue.api.get("running")

    assert record is not None
    assert (record.priority, record.concurrency_key, record.concurrency_limit) == (3, "f", 1)
    assert await queue.claim(10) == []


async def test_runs_behind_many_full_keys_are_claimed(stores: Stores) -> None:
    queue = Queue(stores)
    for round_ in range(2):
        for tenant in range(12):  # more keys than a claim's rounds (MAX_QUEUED_ROUNDS)
            await queue.add(f"t{tenant}-{round_}", key=f"t{tenant}", limit=1)
    await queue.add("free", flow="g")

    first = await queue.claim(12)
    second = await queue.claim(12, owner="w2")

    assert first == [f"t{tenant}-0" for tenant in range(12)]
    assert second == ["free"]

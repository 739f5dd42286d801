"""The workers table and the heartbeat, on each store database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.services.heartbeat import Heartbeat, new_worker_id
from app.store.unit_of_work import Store
from tests.polling import until

AT = datetime(2026, 1, 1, tzinfo=UTC)


async def test_register_beat_list_and_remove(store: Store) -> None:
    async with store.write() as tx:
        await tx.workers.register("h:1:a", "h", 1, AT)
        await tx.workers.register("h:2:b", "h", 2, AT)
        assert await tx.workers.heartbeat("h:2:b", AT + timedelta(seconds=5))
    async with store.read() as tx:
        listed = await tx.workers.all()
    assert [worker.id for worker in listed] == ["h:2:b", "h:1:a"]  # most recently alive first
    assert listed[0].last_heartbeat == AT + timedelta(seconds=5)

    async with store.write() as tx:
        await tx.workers.remove("h:1:a")
        assert not await tx.workers.heartbeat("h:1:a", AT)
    async with store.read() as tx:
        assert [worker.id for worker in await tx.workers.all()] == ["h:2:b"]


async def test_claiming_counts_the_live_workers_that_claim_queued_runs(store: Store) -> None:
    async with store.write() as tx:
        await tx.workers.register("h:1:worker", "h", 1, AT, claims_runs=True)
        await tx.workers.register("h:2:api", "h", 2, AT)  # serves without an embedded worker
        await tx.workers.register("h:3:silent", "h", 3, AT - timedelta(minutes=1), claims_runs=True)
    async with store.read() as tx:
        assert await tx.workers.claiming(alive_since=AT - timedelta(seconds=10)) == 1
        listed = {worker.id: worker.claims_runs for worker in await tx.workers.all()}
    assert listed == {"h:1:worker": True, "h:2:api": False, "h:3:silent": True}


async def test_a_heartbeat_counts_the_live_claiming_workers_itself_included(store: Store) -> None:
    async with store.write() as tx:
        await tx.workers.register("h:1:other", "h", 1, datetime.now(UTC), claims_runs=True)
    heartbeat = Heartbeat(store, 1.0, new_worker_id(), claims_runs=True)
    await heartbeat.start()
    try:
        assert heartbeat.claiming_workers == 2
        async with store.write() as tx:
            await tx.workers.remove("h:1:other")  # it stopped
        await heartbeat.beat()
        assert heartbeat.claiming_workers == 1
    finally:
        await heartbeat.stop()


async def test_a_pruned_worker_registers_again_on_its_next_beat(store: Store) -> None:
    heartbeat = Heartbeat(store, 0.02, new_worker_id())
    await heartbeat.start()
    async with store.write() as tx:
        await tx.workers.remove(heartbeat.worker_id)  # as a janitor would

    async def registered() -> bool:
        async with store.read() as tx:
            return [w.id for w in await tx.workers.all()] == [heartbeat.worker_id]

    await until(registered)
    await heartbeat.stop()
    async with store.read() as tx:
        assert await tx.workers.all() == []


async def test_a_beat_forgets_workers_long_silent(store: Store) -> None:
    heartbeat = Heartbeat(store, 1.0, new_worker_id())
    async with store.write() as tx:  # died long ago, and a moment ago
        await tx.workers.register("h:1:dead", "h", 1, AT)
        await tx.workers.register("h:2:late", "h", 2, datetime.now(UTC))
    await heartbeat.beat()
    async with store.read() as tx:
        listed = {worker.id for worker in await tx.workers.all()}
    assert listed == {"h:2:late", heartbeat.worker_id}

"""The workers table and the heartbeat, on each store database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.services.heartbeat import Heartbeat, new_worker_id
from app.settings import Settings
from app.store import workers
from app.store.database import create_engine, session_factory
from tests.polling import until

AT = datetime(2026, 1, 1, tzinfo=UTC)


async def test_register_beat_list_and_remove(migrated_store_url: str) -> None:
    engine = create_engine(Settings(_env_file=None, database_url=migrated_store_url))
    sessions = session_factory(engine)
    try:
        async with sessions.begin() as session:
            await workers.register(session, "h:1:a", "h", 1, AT)
            await workers.register(session, "h:2:b", "h", 2, AT)
            assert await workers.heartbeat(session, "h:2:b", AT + timedelta(seconds=5))
        async with sessions() as session:
            listed = await workers.all_workers(session)
        assert [worker.id for worker in listed] == ["h:2:b", "h:1:a"]  # most recently alive first
        assert listed[0].last_heartbeat == AT + timedelta(seconds=5)

        async with sessions.begin() as session:
            await workers.remove(session, "h:1:a")
            assert not await workers.heartbeat(session, "h:1:a", AT)
        async with sessions() as session:
            assert [worker.id for worker in await workers.all_workers(session)] == ["h:2:b"]
    finally:
        await engine.dispose()


async def test_a_pruned_worker_registers_again_on_its_next_beat(migrated_store_url: str) -> None:
    engine = create_engine(Settings(_env_file=None, database_url=migrated_store_url))
    sessions = session_factory(engine)
    heartbeat = Heartbeat(sessions, 0.02, new_worker_id())
    try:
        await heartbeat.start()
        async with sessions.begin() as session:
            await workers.remove(session, heartbeat.worker_id)  # as a janitor would

        async def registered() -> bool:
            async with sessions() as session:
                return [w.id for w in await workers.all_workers(session)] == [heartbeat.worker_id]

        await until(registered)
        await heartbeat.stop()
        async with sessions() as session:
            assert await workers.all_workers(session) == []
    finally:
        await engine.dispose()


async def test_a_beat_forgets_workers_long_silent(migrated_store_url: str) -> None:
    engine = create_engine(Settings(_env_file=None, database_url=migrated_store_url))
    sessions = session_factory(engine)
    heartbeat = Heartbeat(sessions, 1.0, new_worker_id())
    try:
        async with sessions.begin() as session:  # died long ago, and a moment ago
            await workers.register(session, "h:1:dead", "h", 1, AT)
            await workers.register(session, "h:2:late", "h", 2, datetime.now(UTC))
        await heartbeat.beat()
        async with sessions() as session:
            listed = {worker.id for worker in await workers.all_workers(session)}
        assert listed == {"h:2:late", heartbeat.worker_id}
    finally:
        await engine.dispose()

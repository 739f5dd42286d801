"""Connection pools of a process: independent opens, default timeouts, idle pools closed, a cap
on the connections all pools hold, bounded pool sizes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import asyncpg
import httpx
import pytest

from app.connections.base import ConnectionPlugin
from app.connections.http import HttpConnection
from app.connections.limits import ConnectionLimits
from app.connections.manager import ConnectionManager
from app.connections.postgres import PostgresConnection
from app.connections.redis import RedisConnection
from app.domain.runs import TaskKey, TaskStatus
from app.engine import FlowExecutor
from app.engine.memory_store import InMemoryRunStore
from app.errors import ConnectionLimitError, ConnectionTimeoutError, InvalidConnectionError
from app.tasks.builtins.http import registry as http_tasks
from app.tasks.context import TaskContext
from tests.http_server import serve
from tests.listener import listening
from tests.polling import until


class GatedPlugin(ConnectionPlugin):
    """Opens when its gate opens (`gate: "slow"` never does); `size` from the params."""

    type: ClassVar[str] = "gated"
    driver: ClassVar[str] = "json"
    description: ClassVar[str] = "test plugin"
    slow_gate: ClassVar[asyncio.Event]
    closed: ClassVar[list[str]] = []

    @property
    def size(self) -> int:
        return int(self.params.get("size", 1))

    @property
    def open_timeout(self) -> float:
        return float(self.params.get("wait", 0.3))

    async def open(self) -> None:
        if self.params.get("gate") == "slow":
            await self.slow_gate.wait()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Any]:
        yield self.name

    async def close(self) -> None:
        self.closed.append(self.name)


@pytest.fixture
async def gated() -> AsyncIterator[Any]:
    GatedPlugin.slow_gate = asyncio.Event()
    GatedPlugin.closed = []
    managers: list[ConnectionManager] = []

    def make(**limits: Any) -> ConnectionManager:
        managers.append(
            ConnectionManager({"gated": GatedPlugin}, limits=ConnectionLimits(**limits))
        )
        return managers[-1]

    yield make
    GatedPlugin.slow_gate.set()
    for manager in managers:
        await manager.aclose()


async def borrow(manager: ConnectionManager, name: str, params: dict[str, Any]) -> Any:
    async with manager.session(name, "gated", params) as connection:
        return connection


async def test_a_slow_open_does_not_hold_up_another_configuration(gated: Any) -> None:
    manager = gated()
    slow = asyncio.create_task(borrow(manager, "slow", {"gate": "slow"}))
    await asyncio.sleep(0)

    assert await asyncio.wait_for(borrow(manager, "fast", {"gate": "open"}), 1) == "fast"
    assert not slow.done()
    GatedPlugin.slow_gate.set()
    assert await asyncio.wait_for(slow, 1) == "slow"


async def test_steps_waiting_for_one_open_share_it_and_one_giving_up_cancels_nothing(
    gated: Any,
) -> None:
    manager = gated()
    impatient = asyncio.create_task(borrow(manager, "db", {"gate": "slow"}))
    patient = asyncio.create_task(borrow(manager, "db", {"gate": "slow"}))
    await asyncio.sleep(0.01)
    impatient.cancel()  # its step timed out
    GatedPlugin.slow_gate.set()

    assert await asyncio.wait_for(patient, 1) == "db"
    assert manager.open_pools() == 1


async def test_a_pool_that_does_not_fit_closes_unused_pools_first(gated: Any) -> None:
    manager = gated(max_total=5)
    await borrow(manager, "old", {"size": 3, "id": 1})
    await borrow(manager, "new", {"size": 3, "id": 2})  # "old" is not borrowed: it makes room

    assert GatedPlugin.closed == ["old"]
    assert manager.held == 3


async def test_past_the_cap_a_new_pool_waits_then_fails_clearly(gated: Any) -> None:
    manager = gated(max_total=5)
    async with manager.session("busy", "gated", {"size": 3, "id": 1}):
        started = time.monotonic()
        with pytest.raises(ConnectionLimitError) as refused:
            await borrow(manager, "late", {"size": 3, "wait": 0.2})
        assert time.monotonic() - started >= 0.2
    assert refused.value.message == (
        "connection 'late' needs 3 connection(s), but the pools in use hold 3 of the 5 that "
        "CONNECTION_MAX_TOTAL allows (waited 0.2s for room)"
    )
    assert manager.held == 3


async def test_a_waiting_pool_opens_once_another_is_given_back(gated: Any) -> None:
    manager = gated(max_total=5)
    session = manager.session("busy", "gated", {"size": 3})
    await session.__aenter__()
    late = asyncio.create_task(borrow(manager, "late", {"size": 3, "wait": 5}))
    await asyncio.sleep(0.05)
    assert not late.done()

    await session.__aexit__(None, None, None)  # "busy" is unused now: it can be closed

    assert await asyncio.wait_for(late, 2) == "late"


async def test_idle_pools_close_and_borrowed_ones_never_do(gated: Any) -> None:
    manager = gated(idle_seconds=0.1)
    await borrow(manager, "idle", {"size": 1})
    async with manager.session("busy", "gated", {"size": 2}):
        await until(lambda: GatedPlugin.closed == ["idle"], deadline=5)
        await asyncio.sleep(0.3)  # three idle periods under a borrower
        assert GatedPlugin.closed == ["idle"]
    await until(lambda: GatedPlugin.closed == ["idle", "busy"], deadline=5)
    assert manager.held == 0
    assert await borrow(manager, "idle", {"size": 1}) == "idle"  # opened again on demand


async def pg_backends(postgres_url: str) -> int:
    admin = await asyncpg.connect(postgres_url.rsplit("/", 1)[0] + "/postgres")
    try:
        count: int = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
            postgres_url.rsplit("/", 1)[1],
        )
    finally:
        await admin.close()
    return count


async def test_idle_postgres_pools_give_their_connections_back(postgres_url: str) -> None:
    manager = ConnectionManager(limits=ConnectionLimits(idle_seconds=0.2))
    try:
        for flow in range(3):  # three flows, min_size 3 each
            params = {
                "url": postgres_url,
                "pool_size": 3,
                "min_size": 3,
                "command_timeout": flow + 1,
            }
            async with manager.session(f"db{flow}", "postgres", params) as connection:
                assert await connection.fetchval("SELECT 1") == 1
        assert await pg_backends(postgres_url) == 9

        await until(lambda: manager.open_pools() == 0, deadline=5)
        await until(lambda: _zero(pg_backends(postgres_url)), deadline=5)  # all given back
    finally:
        await manager.aclose()


async def _zero(count: Awaitable[int]) -> bool:
    return await count == 0


@pytest.mark.parametrize("kind", ["postgres", "redis"])
async def test_a_server_that_never_answers_times_out_and_freezes_nobody(
    kind: str, postgres_url: str, redis_url: str
) -> None:
    manager = ConnectionManager(limits=ConnectionLimits(connect_timeout=0.5))
    good = {"postgres": {"url": postgres_url}, "redis": {"url": redis_url}}[kind]
    try:
        async with listening(silent=True) as silent:
            url = {
                "postgres": f"postgresql://postgres@127.0.0.1:{silent.port}/db",
                "redis": f"redis://127.0.0.1:{silent.port}/0",
            }[kind]
            stuck = asyncio.create_task(_open(manager, "stuck", kind, {"url": url}))
            await until(lambda: silent.reached)
            started = time.monotonic()
            await asyncio.wait_for(_open(manager, "good", kind, good), 2)
            assert time.monotonic() - started < 0.4  # it did not wait for the stuck one
            assert not stuck.done()

            with pytest.raises(ConnectionTimeoutError) as timed_out:
                await asyncio.wait_for(stuck, 5)
        assert timed_out.value.message.startswith(f"connection 'stuck' to {url} timed out: ")
        assert "no answer within 0.5s" in timed_out.value.message
    finally:
        await manager.aclose()


async def _open(manager: ConnectionManager, name: str, kind: str, params: Any) -> None:
    async with manager.session(name, kind, params):
        pass


async def test_an_http_server_that_never_answers_times_out_naming_the_request() -> None:
    manager = ConnectionManager()
    try:
        async with listening(silent=True) as silent:
            base = f"http://127.0.0.1:{silent.port}"
            params = {"base_url": base, "timeout": 0.3}
            async with manager.session("api", "http", params) as client:
                task = http_tasks.get("http_request")
                context = TaskContext.for_attempt("r", "F", "call", 0, 1)
                with serve() as server:  # meanwhile, another request goes through
                    answered = asyncio.create_task(
                        task.invoke({"url": server.url + "/text"}, context=context)
                    )
                    with pytest.raises(httpx.ReadTimeout) as timed_out:
                        await task.invoke({"path": "/slow"}, context=context, connection=client)
                    assert (await answered)["text"] == "plain text"
        assert str(timed_out.value).startswith(f"GET {base}/slow failed: ")
    finally:
        await manager.aclose()


def test_every_plugin_has_connect_and_command_timeouts_by_default() -> None:
    limits = ConnectionLimits(connect_timeout=4, command_timeout=40)
    postgres = PostgresConnection("db", {"url": "postgresql://h/db"}, limits=limits).settings
    redis = RedisConnection("cache", {"url": "redis://h/0"}, limits=limits).settings
    http = HttpConnection("api", {}, limits=limits).settings

    assert (postgres.timeout, postgres.command_timeout) == (4, 40)
    assert (redis.socket_connect_timeout, redis.socket_timeout) == (4, 40)
    assert (http.connect_timeout, http.timeout) == (4, 30)  # http's own 30 s per read
    assert PostgresConnection("db", {"url": "postgresql://h/db"}).settings.command_timeout == 300


def test_a_connections_own_timeouts_win() -> None:
    limits = ConnectionLimits(connect_timeout=4, command_timeout=40)
    params = {"url": "postgresql://h/db", "timeout": 1, "command_timeout": 2}
    postgres = PostgresConnection("db", params, limits=limits).settings
    redis = RedisConnection("c", {"url": "redis://h/0", "socket_timeout": 3}, limits=limits)

    assert (postgres.timeout, postgres.command_timeout) == (1, 2)
    assert (redis.settings.socket_connect_timeout, redis.settings.socket_timeout) == (3, 3)
    assert HttpConnection("api", {"timeout": 2}, limits=limits).settings.connect_timeout == 2


@pytest.mark.parametrize(
    ("plugin", "params"),
    [
        (PostgresConnection, {"url": "postgresql://h/db", "pool_size": 11}),
        (RedisConnection, {"url": "redis://h/0", "max_connections": 11}),
        (HttpConnection, {"max_connections": 11}),
    ],
)
def test_pool_sizes_are_bounded(plugin: type[ConnectionPlugin], params: dict[str, Any]) -> None:
    with pytest.raises(InvalidConnectionError) as refused:
        plugin("big", params, limits=ConnectionLimits(max_pool_size=10))

    assert refused.value.message.startswith("connection 'big': ")
    assert "is 11, more than CONNECTION_MAX_POOL_SIZE (10) allows" in refused.value.message


FLOW = """
flow: TwoCaches
mode: dag
inputs: {key: string}
connections:
  stuck: {type: redis, url: "${env.STUCK_URL}", socket_connect_timeout: 0.5}
  good: {type: redis, url: "${env.GOOD_URL}"}
steps:
  - redis_get: {id: hang, connection: stuck, key: "${inputs.key}", on_error: continue}
  - redis_get: {id: fine, connection: good, key: "${inputs.key}"}
"""


async def test_a_step_on_a_server_that_never_answers_fails_alone_naming_its_connection(
    redis_url: str, redis_prefix: str
) -> None:
    store = InMemoryRunStore()
    manager = ConnectionManager()
    try:
        async with listening(silent=True) as silent:
            stuck_url = f"redis://127.0.0.1:{silent.port}/0"
            env = {"STUCK_URL": stuck_url, "GOOD_URL": redis_url}
            executor = FlowExecutor(store=store, connections=manager, env=env)
            result = await executor.run(FLOW, {"key": redis_prefix + "k"})
    finally:
        await manager.aclose()

    tasks = store.runs[result.run_id].tasks
    hang, fine = tasks[TaskKey("hang")], tasks[TaskKey("fine")]
    assert fine.status is TaskStatus.COMPLETED
    assert hang.status is TaskStatus.FAILED
    assert hang.error is not None
    assert hang.error.type == "ConnectionTimeoutError"
    assert hang.error.message.startswith(f"connection 'stuck' to {stuck_url} timed out")
    assert fine.finished_at is not None
    assert hang.finished_at is not None
    assert fine.finished_at < hang.finished_at  # it never waited for the stuck open

"""What a flow may reach, end to end through the ConnectionManager and the real drivers.

A listener on loopback records whether anything reached it: every spelling of a loopback
address is refused for postgres, redis and http (a connection, and `http_request` without
one), and the listener is never reached. Allow-listed hosts are reachable (the real PostgreSQL
and Redis on 127.0.0.1), the store database is not, DNS rebinding cannot reach loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import httpcore
import httpx
import pytest

from app.connections.destinations import DestinationPolicy, StoreDatabase
from app.connections.http_transport import PinnedBackend
from app.connections.limits import ConnectionLimits
from app.connections.manager import ConnectionManager
from app.errors import ConnectionFailedError, DestinationRefusedError, NonRetryableError
from app.tasks.builtins.http import registry as http_tasks
from app.tasks.context import TaskContext
from tests.http_server import LocalHttpServer, serve
from tests.listener import Listener, listening

# Every spelling of a loopback (or this host's) address that a client could be handed.
LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "localhost",
    "127.1",
    "0x7f.1",
    "2130706433",
    "0177.0.0.1",
    "[::ffff:127.0.0.1]",
    "[::1]",
    "0.0.0.0",
    "[::]",
    "[::127.0.0.1]",
    "[2002:7f00:1::]",
    "[64:ff9b::127.0.0.1]",
]
DENY_PRIVATE = DestinationPolicy.build(deny_private_networks=True)
ELSEWHERE_ONLY = DestinationPolicy.build(["api.example.com", "10.0.0.0/8"])
POLICIES = pytest.mark.parametrize(
    "policy", [DENY_PRIVATE, ELSEWHERE_ONLY], ids=["deny-private", "allowlist"]
)
FAST = ConnectionLimits(connect_timeout=2)


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    async with listening() as recorded:
        yield recorded


@pytest.fixture
async def manager_for() -> AsyncIterator[Any]:
    managers: list[ConnectionManager] = []

    def make(policy: DestinationPolicy, limits: ConnectionLimits = FAST) -> ConnectionManager:
        managers.append(ConnectionManager(policy=policy, limits=limits))
        return managers[-1]

    yield make
    for manager in managers:
        await manager.aclose()


async def borrow(manager: ConnectionManager, kind: str, params: dict[str, Any]) -> Any:
    async with manager.session("target", kind, params) as connection:
        if kind == "http":
            return await connection.get("/")
        return connection


def context() -> TaskContext:
    return TaskContext.for_attempt("run-1", "Reach", "fetch", 0, 1)


async def http_request(client: httpx.AsyncClient | None, url: str) -> dict[str, Any]:
    task = http_tasks.get("http_request")
    return await task.invoke({"url": url}, context=context(), connection=client)


@POLICIES
@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
@pytest.mark.parametrize("kind", ["postgres", "redis", "http"])
async def test_every_spelling_of_loopback_is_refused_and_never_reached(
    manager_for: Any, listener: Listener, policy: DestinationPolicy, host: str, kind: str
) -> None:
    port = listener.port
    params = {
        "postgres": {"url": f"postgresql://postgres@{host}:{port}/db"},
        "redis": {"url": f"redis://{host}:{port}/0"},
        "http": {"base_url": f"http://{host}:{port}"},
    }[kind]
    manager = manager_for(policy)

    if kind == "http" and host == "0177.0.0.1":  # httpx refuses this spelling itself
        with pytest.raises(ConnectionFailedError, match="Invalid IPv4 address"):
            await borrow(manager, kind, params)
    else:
        with pytest.raises(DestinationRefusedError, match=r"connection 'target': .*\(.*\) is "):
            await borrow(manager, kind, params)

    assert not listener.reached


@POLICIES
@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_http_request_without_a_connection_is_refused_every_spelling(
    manager_for: Any, listener: Listener, policy: DestinationPolicy, host: str
) -> None:
    manager = manager_for(policy)
    url = f"http://{host}:{listener.port}/x"

    async with manager.default_session(frozenset({"http"})) as client:
        assert client is not None
        if host == "0177.0.0.1":
            with pytest.raises(NonRetryableError, match="cannot parse the URL"):
                await http_request(client, url)
        else:
            with pytest.raises(DestinationRefusedError) as refused:
                await http_request(client, url)
            assert refused.value.message.startswith(f"step 'fetch': GET {url}: ")
            assert "CONNECTION_ALLOWLIST" in refused.value.message

    assert not listener.reached


async def test_a_redirect_to_loopback_is_refused(manager_for: Any, listener: Listener) -> None:
    # The server is allow-listed; where it redirects is checked like any other destination.
    with serve() as server:
        manager = manager_for(DestinationPolicy.build([f"127.0.0.1:{_port(server)}"]))
        target = f"http://127.0.0.1:{listener.port}/"
        async with manager.session("api", "http", {"base_url": server.url}) as client:
            with pytest.raises(DestinationRefusedError, match="is not in CONNECTION_ALLOWLIST"):
                await client.get("/redirect", params={"to": target}, follow_redirects=True)
        assert server.requests[-1].path == "/redirect"
    assert not listener.reached


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("redis", "unix:///run/redis/redis.sock"),
        ("postgres", "postgresql://postgres@/db?host=/run/postgresql"),
        ("postgres", "postgresql://postgres@%2Frun%2Fpostgresql/db"),
    ],
)
async def test_unix_sockets_are_refused(manager_for: Any, kind: str, url: str) -> None:
    with pytest.raises(DestinationRefusedError, match="unix socket '/run/"):
        await borrow(manager_for(DENY_PRIVATE), kind, {"url": url})


async def test_proxies_from_the_environment_are_not_used(
    manager_for: Any, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = f"http://127.0.0.1:{listener.port}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with serve() as server:
        manager = manager_for(DestinationPolicy.build(["127.0.0.1"]))
        async with manager.default_session(frozenset({"http"})) as client:
            outputs = await http_request(client, server.url + "/json")
        assert outputs["json"] == {"hello": "world"}
        assert server.requests
    assert not listener.reached


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Records where it was asked to connect, and refuses (no network in a unit test)."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.connected.append(host)
        raise httpcore.ConnectError(f"recorded {host}")


class RebindingResolver:
    """A public address first, loopback on every later question (DNS rebinding)."""

    def __init__(self, first: Sequence[str]) -> None:
        self.first = list(first)
        self.asked = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        return self.first if self.asked == 1 else ["127.0.0.1"]


@pytest.mark.parametrize("first", [["198.51.100.7"], ["198.51.100.7", "127.0.0.1"]])
async def test_dns_rebinding_cannot_reach_loopback_over_http(first: list[str]) -> None:
    resolver = RebindingResolver(first)
    policy = DestinationPolicy.build(["198.51.100.0/24"], resolver=resolver)
    backend = RecordingBackend()

    with pytest.raises(httpcore.ConnectError):
        await PinnedBackend(policy, "connection 'api'", backend).connect_tcp("rebind.test", 80)

    assert backend.connected == ["198.51.100.7"]  # the checked address, never the name
    assert resolver.asked == 1


@pytest.mark.parametrize("kind", ["postgres", "redis"])
async def test_dns_rebinding_cannot_reach_loopback_for_databases(
    manager_for: Any, listener: Listener, kind: str
) -> None:
    resolver = RebindingResolver(["198.51.100.7", "127.0.0.1"])
    policy = DestinationPolicy.build(["198.51.100.0/24"], resolver=resolver)
    url = {
        "postgres": f"postgresql://postgres@rebind.test:{listener.port}/db",
        "redis": f"redis://rebind.test:{listener.port}/0",
    }[kind]
    manager = manager_for(policy, ConnectionLimits(connect_timeout=0.5))

    with pytest.raises(ConnectionFailedError):  # 198.51.100.7 is nowhere: unreachable
        await borrow(manager, kind, {"url": url})

    assert not listener.reached
    assert resolver.asked == 1


async def test_allow_listed_postgres_is_reachable(manager_for: Any, postgres_url: str) -> None:
    manager = manager_for(DestinationPolicy.build(["127.0.0.1"]))

    async with manager.session("db", "postgres", {"url": postgres_url}) as connection:
        assert await connection.fetchval("SELECT inet_server_addr()::text") == "127.0.0.1/32"


async def test_allow_listed_redis_is_reachable(manager_for: Any, redis_url: str) -> None:
    manager = manager_for(DestinationPolicy.build(["127.0.0.1:6379"]))

    async with manager.session("cache", "redis", {"url": redis_url}) as client:
        assert await client.ping() is True


async def test_allow_listed_http_is_reachable_by_name(manager_for: Any) -> None:
    with serve() as server:
        url = server.url.replace("127.0.0.1", "localhost")
        manager = manager_for(DestinationPolicy.build(["localhost"]))
        async with manager.session("api", "http", {"base_url": url}) as client:
            assert (await client.get("/json")).json() == {"hello": "world"}
        async with manager.default_session(frozenset({"http"})) as client:
            assert (await http_request(client, url + "/text"))["text"] == "plain text"


async def test_the_store_database_is_refused_when_its_host_is_listed(
    manager_for: Any, postgres_url: str
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    store = StoreDatabase((("127.0.0.1", 5432),), database)
    listed = DestinationPolicy.build(["127.0.0.1", "localhost"], store=store)
    manager = manager_for(listed)

    for url in (postgres_url, postgres_url.replace("127.0.0.1", "localhost")):
        with pytest.raises(DestinationRefusedError, match="CONNECTION_ALLOW_STORE=true"):
            await borrow(manager, "postgres", {"url": url})
    # Named in the query string instead of the path, it is the same database.
    query_url = postgres_url.rsplit("/", 1)[0] + f"/?dbname={database}"
    with pytest.raises(DestinationRefusedError, match="own store"):
        await borrow(manager, "postgres", {"url": query_url})

    allowed = manager_for(DestinationPolicy.build(["127.0.0.1"], store=store, allow_store=True))
    async with allowed.session("db", "postgres", {"url": postgres_url}) as connection:
        assert await connection.fetchval("SELECT current_database()") == database


async def test_the_store_is_refused_even_when_nothing_else_is_checked(
    manager_for: Any, postgres_url: str
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    policy = DestinationPolicy(store=StoreDatabase((("localhost", 5432),), database))

    with pytest.raises(DestinationRefusedError, match="own store"):
        await borrow(manager_for(policy), "postgres", {"url": postgres_url})
    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    assert isinstance(await borrow(manager_for(policy), "postgres", {"url": admin}), object)


async def test_postgres_connects_to_the_checked_address(
    manager_for: Any, postgres_url: str
) -> None:
    # `localhost` is listed by name; asyncpg is handed the address it resolved to.
    manager = manager_for(DestinationPolicy.build(["localhost"]))
    url = postgres_url.replace("127.0.0.1", "localhost")

    async with manager.session("db", "postgres", {"url": url}) as connection:
        assert isinstance(connection, asyncpg.Connection)
        address = await connection.fetchval("SELECT inet_server_addr()::text")
        assert address in ("127.0.0.1/32", "::1/128")


def _port(server: LocalHttpServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def test_a_name_that_does_not_resolve_fails_naming_connection_and_request(
    manager_for: Any,
) -> None:
    async def nowhere(host: str, port: int) -> list[str]:
        raise ConnectionFailedError(f"cannot resolve {host!r}: Name or service not known")

    manager = manager_for(DestinationPolicy.build(deny_private_networks=True, resolver=nowhere))

    with pytest.raises(ConnectionFailedError) as failed:
        await borrow(manager, "redis", {"url": "redis://cache.invalid:6379/0"})
    assert failed.value.message == (
        "connection 'target': cannot resolve 'cache.invalid': Name or service not known"
    )
    async with manager.default_session(frozenset({"http"})) as client:
        with pytest.raises(httpx.ConnectError) as unresolved:
            await http_request(client, "http://api.invalid/x")
    assert str(unresolved.value) == (
        "GET http://api.invalid/x failed: cannot resolve 'api.invalid': Name or service not known"
    )

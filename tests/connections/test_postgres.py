"""The `postgres` connection plugin against a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from app.connections.postgres import PostgresConnection
from app.errors import ConnectionFailedError, DriverMissingError

OpenPlugin = Callable[..., Awaitable[PostgresConnection]]

URL = "postgresql://localhost/x"  # for checks made before connecting


@pytest.fixture
async def open_plugin(postgres_url: str) -> AsyncIterator[OpenPlugin]:
    """Open a plugin on the test database (extra params override); closed after the test."""
    opened: list[PostgresConnection] = []

    async def open_(**params: Any) -> PostgresConnection:
        plugin = PostgresConnection("db", {"url": postgres_url, **params})
        await plugin.open()
        opened.append(plugin)
        return plugin

    yield open_
    for plugin in opened:
        await plugin.close()


async def other_backends(postgres_url: str) -> set[int]:
    """Backend pids connected to the test database, other than the one asking."""
    admin = await asyncpg.connect(postgres_url)
    try:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    return {row["pid"] for row in rows}


async def wait_until_gone(postgres_url: str, pids: set[int]) -> set[int]:
    """Poll until none of `pids` is connected (the server notices a closed socket shortly)."""
    for _ in range(100):  # about five seconds
        left = pids & await other_backends(postgres_url)
        if not left:
            break
        await asyncio.sleep(0.05)
    return left


async def test_session_lends_a_connection_to_the_configured_database(
    open_plugin: OpenPlugin, postgres_url: str
) -> None:
    plugin = await open_plugin()

    async with plugin.session() as connection:
        database = await connection.fetchval("SELECT current_database()")

    assert postgres_url.endswith("/" + database)


@pytest.mark.parametrize("scheme", ["postgres", "postgresql+asyncpg"])
async def test_accepts_other_spellings_of_the_url_scheme(postgres_url: str, scheme: str) -> None:
    plugin = PostgresConnection("db", {"url": postgres_url.replace("postgresql", scheme, 1)})
    await plugin.open()
    try:
        async with plugin.session() as connection:
            assert await connection.fetchval("SELECT 1") == 1
    finally:
        await plugin.close()


async def test_sessions_reuse_pooled_connections(open_plugin: OpenPlugin) -> None:
    plugin = await open_plugin(pool_size=1)

    async with plugin.session() as connection:
        first = await connection.fetchval("SELECT pg_backend_pid()")
    async with plugin.session() as connection:
        second = await connection.fetchval("SELECT pg_backend_pid()")

    assert first == second


async def test_pool_size_caps_the_connections_lent_at_once(open_plugin: OpenPlugin) -> None:
    plugin = await open_plugin(pool_size=2)

    async def borrow() -> int:
        async with plugin.session() as connection:
            pid: int = await connection.fetchval("SELECT pg_backend_pid()")
            return pid

    async with plugin.session() as first, plugin.session() as second:
        held = {
            await first.fetchval("SELECT pg_backend_pid()"),
            await second.fetchval("SELECT pg_backend_pid()"),
        }
        third = asyncio.create_task(borrow())
        done, _ = await asyncio.wait({third}, timeout=0.3)
        assert not done, "a third connection was lent while the pool of two was in use"
    assert await asyncio.wait_for(third, 5) in held
    assert len(held) == 2


async def test_close_disconnects_the_pool(open_plugin: OpenPlugin, postgres_url: str) -> None:
    plugin = await open_plugin(pool_size=2, min_size=2)
    pids = await other_backends(postgres_url)
    assert len(pids) == 2

    await plugin.close()

    assert await wait_until_gone(postgres_url, pids) == set()
    with pytest.raises(ConnectionFailedError, match="'db' is not open"):
        async with plugin.session():
            pass


async def test_close_terminates_a_connection_never_given_back(
    open_plugin: OpenPlugin, postgres_url: str
) -> None:
    plugin = await open_plugin()
    plugin.close_timeout = 0.1

    async with plugin.session() as connection:
        pid = await connection.fetchval("SELECT pg_backend_pid()")
        await asyncio.wait_for(plugin.close(), 5)
        with pytest.raises(asyncpg.InterfaceError):
            await connection.fetchval("SELECT 1")

    assert await wait_until_gone(postgres_url, {pid}) == set()


async def test_close_twice_or_unopened_is_harmless(open_plugin: OpenPlugin) -> None:
    plugin = await open_plugin()
    await plugin.close()
    await plugin.close()
    await PostgresConnection("db", {"url": URL}).close()


async def test_command_timeout_bounds_each_statement(open_plugin: OpenPlugin) -> None:
    plugin = await open_plugin(command_timeout=0.2)

    async with plugin.session() as connection:
        with pytest.raises(TimeoutError):
            await connection.execute("SELECT pg_sleep(10)")


async def test_numbers_may_come_as_text_from_the_environment(postgres_url: str) -> None:
    plugin = PostgresConnection(
        "db",
        {"url": postgres_url, "pool_size": "3", "min_size": "0", "timeout": "2.5"},
    )

    assert (plugin.settings.pool_size, plugin.settings.min_size) == (3, 0)
    assert plugin.settings.timeout == 2.5


async def test_refused_connection_names_it_without_the_password() -> None:
    plugin = PostgresConnection(
        "db", {"url": "postgresql://postgres:s3cr3t-pw@127.0.0.1:1/users_db", "timeout": 5}
    )

    with pytest.raises(ConnectionFailedError) as caught:
        await plugin.open()

    message = str(caught.value)
    assert message.startswith(
        "connection 'db' to postgresql://postgres:***@127.0.0.1:1/users_db failed: "
    )
    assert "s3cr3t-pw" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_missing_database_fails_with_the_servers_reason(postgres_url: str) -> None:
    base = postgres_url.rsplit("/", 1)[0]
    plugin = PostgresConnection("db", {"url": f"{base}/no_such_database"})

    with pytest.raises(ConnectionFailedError, match='database "no_such_database" does not exist'):
        await plugin.open()


def test_unknown_parameter_is_named() -> None:
    with pytest.raises(
        ConnectionFailedError, match=r"connection 'db'.*unknown parameter 'poolsize'"
    ):
        PostgresConnection("db", {"url": URL, "poolsize": 5})


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({}, "'url' is required"),
        ({"url": "  "}, "'url' is required"),
        ({"url": "mysql://root:pw@localhost/x"}, "must start with postgresql://"),
        ({"url": URL, "pool_size": 0}, "'pool_size' must be an integer >= 1"),
        ({"url": URL, "pool_size": "many"}, "'pool_size' must be an integer >= 1"),
        ({"url": URL, "pool_size": True}, "'pool_size' must be an integer >= 1"),
        ({"url": URL, "pool_size": 2, "min_size": 3}, r"'min_size' \(3\) exceeds 'pool_size'"),
        ({"url": URL, "timeout": 0}, "'timeout' must be a number of seconds > 0"),
        ({"url": URL, "command_timeout": "soon"}, "'command_timeout' must be a number of"),
        ({"url": URL, "statement_cache_size": -1}, "'statement_cache_size' must be an integer"),
    ],
)
def test_invalid_parameters_are_refused(params: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConnectionFailedError, match=complaint) as caught:
        PostgresConnection("db", params)

    assert str(caught.value).startswith("connection 'db': ")
    assert "pw" not in str(caught.value)


async def test_missing_driver_fails_only_when_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # makes `import asyncpg` fail
    plugin = PostgresConnection("db", {"url": URL})

    with pytest.raises(DriverMissingError, match="pip install asyncpg"):
        await plugin.open()

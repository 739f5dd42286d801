"""The `redis` connection plugin against a real Redis server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.connections.redis import RedisConnection
from app.errors import ConnectionFailedError, DriverMissingError

OpenPlugin = Callable[..., Awaitable[RedisConnection]]

URL = "redis://localhost:6379/0"  # for checks made before connecting


@pytest.fixture
async def open_plugin(redis_url: str) -> AsyncIterator[OpenPlugin]:
    """Open a plugin on the test database (extra params override); closed after the test."""
    opened: list[RedisConnection] = []

    async def open_(**params: Any) -> RedisConnection:
        plugin = RedisConnection("cache", {"url": redis_url, **params})
        await plugin.open()
        opened.append(plugin)
        return plugin

    yield open_
    for plugin in opened:
        await plugin.close()


async def is_connected(redis_url: str, client_id: int) -> bool:
    observer = redis_asyncio.Redis.from_url(redis_url)
    try:
        listing = await observer.client_list(client_id=[client_id])
    finally:
        await observer.aclose()
    return bool(listing)


async def disconnected(redis_url: str, client_id: int) -> bool:
    """Poll until the server has dropped the connection (it notices a closed socket shortly)."""
    for _ in range(100):  # about five seconds
        if not await is_connected(redis_url, client_id):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_session_lends_a_client_of_the_configured_database(
    open_plugin: OpenPlugin, redis_url: str, redis_prefix: str
) -> None:
    plugin = await open_plugin()

    async with plugin.session() as client:
        await client.set(redis_prefix + "greeting", "hello")

    observer = redis_asyncio.Redis.from_url(redis_url)
    try:
        assert await observer.get(redis_prefix + "greeting") == b"hello"
    finally:
        await observer.aclose()


@pytest.mark.parametrize(
    ("decode", "expected"), [({}, "hello"), ({"decode_responses": False}, b"hello")]
)
async def test_decode_responses_chooses_text_or_bytes(
    open_plugin: OpenPlugin, redis_prefix: str, decode: dict[str, Any], expected: str | bytes
) -> None:
    plugin = await open_plugin(**decode)

    async with plugin.session() as client:
        await client.set(redis_prefix + "greeting", "hello")
        assert await client.get(redis_prefix + "greeting") == expected


async def test_every_session_shares_one_client(open_plugin: OpenPlugin) -> None:
    plugin = await open_plugin()

    async with plugin.session() as first, plugin.session() as second:
        assert first is second


async def test_max_connections_makes_busy_commands_wait_instead_of_failing(
    open_plugin: OpenPlugin, redis_prefix: str
) -> None:
    plugin = await open_plugin(max_connections=1)

    async with plugin.session() as client:
        ids = await asyncio.gather(*(client.client_id() for _ in range(20)))
        counter = redis_prefix + "counter"
        counts = await asyncio.gather(*(client.incr(counter) for _ in range(20)))

    assert len(set(ids)) == 1
    assert sorted(counts) == list(range(1, 21))


async def test_socket_timeout_bounds_each_reply(open_plugin: OpenPlugin, redis_prefix: str) -> None:
    plugin = await open_plugin(socket_timeout=0.2)

    async with plugin.session() as client:
        with pytest.raises(RedisTimeoutError):
            await client.blpop([redis_prefix + "never-filled"], timeout=10)


async def test_close_disconnects_the_client(open_plugin: OpenPlugin, redis_url: str) -> None:
    plugin = await open_plugin()
    async with plugin.session() as client:
        client_id = await client.client_id()
    assert await is_connected(redis_url, client_id)

    await plugin.close()

    assert await disconnected(redis_url, client_id)
    with pytest.raises(ConnectionFailedError, match="'cache' is not open"):
        async with plugin.session():
            pass


async def test_close_twice_or_unopened_is_harmless(open_plugin: OpenPlugin) -> None:
    plugin = await open_plugin()
    await plugin.close()
    await plugin.close()
    await RedisConnection("cache", {"url": URL}).close()


async def test_refused_connection_names_it_without_the_password() -> None:
    plugin = RedisConnection("cache", {"url": "redis://:s3cr3t-pw@127.0.0.1:1/0"})

    with pytest.raises(ConnectionFailedError) as caught:
        await plugin.open()

    message = str(caught.value)
    assert message.startswith("connection 'cache' to redis://:***@127.0.0.1:1/0 failed: ")
    assert "s3cr3t-pw" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_rejected_credentials_fail_without_the_password(redis_url: str) -> None:
    url = redis_url.replace("redis://", "redis://nobody:s3cr3t-pw@", 1)
    plugin = RedisConnection("cache", {"url": url})

    with pytest.raises(ConnectionFailedError, match="AuthenticationError") as caught:
        await plugin.open()

    assert "redis://nobody:***@" in str(caught.value)
    assert "s3cr3t-pw" not in str(caught.value)


def test_unknown_parameter_is_named() -> None:
    with pytest.raises(ConnectionFailedError, match=r"'cache'.*unknown parameter 'max_conns'"):
        RedisConnection("cache", {"url": URL, "max_conns": 5})


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({}, "'url' is required"),
        ({"url": "http://user:pw@localhost"}, "must start with redis://, rediss:// or unix://"),
        ({"url": URL, "max_connections": 0}, "'max_connections' must be an integer >= 1"),
        ({"url": URL, "decode_responses": "maybe"}, "'decode_responses' must be true or false"),
        ({"url": URL, "socket_timeout": -1}, "'socket_timeout' must be a number of seconds > 0"),
    ],
)
def test_invalid_parameters_are_refused(params: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConnectionFailedError, match=complaint) as caught:
        RedisConnection("cache", params)

    assert str(caught.value).startswith("connection 'cache': ")
    assert "pw" not in str(caught.value)


def test_values_may_come_as_text_from_the_environment() -> None:
    plugin = RedisConnection(
        "cache", {"url": URL, "max_connections": "5", "decode_responses": "false"}
    )

    assert plugin.settings.max_connections == 5
    assert plugin.settings.decode_responses is False


async def test_missing_driver_fails_only_when_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)  # makes the import fail
    plugin = RedisConnection("cache", {"url": URL})

    with pytest.raises(DriverMissingError, match="pip install redis"):
        await plugin.open()

"""The built-in Redis tasks, called the way the engine calls them, on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.connections.redis import RedisConnection
from app.errors import NonRetryableError
from app.tasks.builtins.redis import registry
from app.tasks.context import TaskContext

Run = Callable[..., Awaitable[dict[str, Any]]]
Connect = Callable[..., Awaitable[Run]]


def prefixed(prefix: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The step's keys under the test's own prefix (values that are not keys left as they are,
    for the tests of badly shaped arguments)."""
    renamed = dict(arguments)
    if isinstance(renamed.get("key"), str):
        renamed["key"] = prefix + renamed["key"]
    keys = renamed.get("keys")
    if isinstance(keys, str):
        renamed["keys"] = prefix + keys
    elif isinstance(keys, list):
        renamed["keys"] = [prefix + key if isinstance(key, str) else key for key in keys]
    return renamed


@pytest.fixture
async def connect(redis_url: str, redis_prefix: str) -> AsyncIterator[Connect]:
    """Open the plugin (extra params override) and give a runner using its session; keys are
    written under the test's own prefix."""
    plugins: list[RedisConnection] = []

    async def connect_(**params: Any) -> Run:
        plugin = RedisConnection("cache", {"url": redis_url, **params})
        await plugin.open()
        plugins.append(plugin)

        async def run_(task: str, **arguments: Any) -> dict[str, Any]:
            context = TaskContext(run_id="run-1", flow="Cache", step_id=task)
            async with plugin.session() as connection:
                return await registry.get(task).invoke(
                    prefixed(redis_prefix, arguments), context=context, connection=connection
                )

        return run_

    yield connect_
    for plugin in plugins:
        await plugin.close()


@pytest.fixture
async def run(connect: Connect) -> Run:
    return await connect()


class Raw:
    """A separate client that sees exactly what is stored under the test's prefix."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def get(self, key: str) -> Any:
        return await self.client.get(self.prefix + key)

    async def set(self, key: str, value: str) -> Any:
        return await self.client.set(self.prefix + key, value)

    async def ttl(self, key: str) -> Any:
        return await self.client.ttl(self.prefix + key)

    async def pttl(self, key: str) -> Any:
        return await self.client.pttl(self.prefix + key)

    async def dbsize(self) -> int:
        """How many keys the test wrote."""
        return len([key async for key in self.client.scan_iter(match=self.prefix + "*")])


@pytest.fixture
async def raw(redis_url: str, redis_prefix: str) -> AsyncIterator[Raw]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield Raw(client, redis_prefix)
    await client.aclose()


async def test_set_then_get_a_string(run: Run) -> None:
    assert await run("redis_set", key="name", value="Alice") == {"success": True}
    assert await run("redis_get", key="name") == {"value": "Alice"}


async def test_get_a_missing_key_gives_null(run: Run) -> None:
    assert await run("redis_get", key="nobody") == {"value": None}


async def test_mappings_and_lists_round_trip_as_compact_json(run: Run, raw: Raw) -> None:
    user = {"id": 1, "name": "Alice", "tags": ["a", "b"], "active": True, "manager": None}

    await run("redis_set", key="user:1", value=user)
    await run("redis_set", key="ids", value=[1, 2, 3])

    assert await raw.get("user:1") == (
        '{"id":1,"name":"Alice","tags":["a","b"],"active":true,"manager":null}'
    )
    assert await run("redis_get", key="user:1") == {"value": user}
    assert await run("redis_get", key="ids") == {"value": [1, 2, 3]}


async def test_datetimes_are_stored_as_text(run: Run, raw: Raw) -> None:
    await run("redis_set", key="seen", value={"at": datetime(2024, 5, 17, 9, 30)})

    assert await raw.get("seen") == '{"at":"2024-05-17 09:30:00"}'
    assert await run("redis_get", key="seen") == {"value": {"at": "2024-05-17 09:30:00"}}


@pytest.mark.parametrize(
    ("value", "stored"),
    [(42, "42"), (2.5, "2.5"), (True, "true"), (None, "null"), ("{not json", "{not json")],
)
async def test_other_values_come_back_as_the_stored_text(
    run: Run, raw: Raw, value: Any, stored: str
) -> None:
    await run("redis_set", key="k", value=value)

    assert await raw.get("k") == stored
    assert await run("redis_get", key="k") == {"value": stored}


async def test_json_text_written_by_others_is_decoded(run: Run, raw: Raw) -> None:
    await raw.set("obj", ' {"a": [1, 2]}')
    await raw.set("number", "7")

    assert await run("redis_get", key="obj") == {"value": {"a": [1, 2]}}
    assert await run("redis_get", key="number") == {"value": "7"}


async def test_bytes_are_decoded_when_the_client_does_not_decode(connect: Connect) -> None:
    run = await connect(decode_responses=False)

    await run("redis_set", key="name", value="Zoë")
    await run("redis_set", key="user", value={"name": "Zoë"})

    assert await run("redis_get", key="name") == {"value": "Zoë"}
    assert await run("redis_get", key="user") == {"value": {"name": "Zoë"}}


async def test_a_value_that_is_not_text_fails_without_retry(connect: Connect) -> None:
    run = await connect(decode_responses=False)
    await run("redis_set", key="blob", value=b"\xff\xfe")

    with pytest.raises(NonRetryableError, match=r"key '\S*blob' is not UTF-8 text"):
        await run("redis_get", key="blob")


async def test_nx_writes_only_a_missing_key(run: Run) -> None:
    first = await run("redis_set", key="lock", value="a", nx=True)
    second = await run("redis_set", key="lock", value="b", nx=True)

    assert (first, second) == ({"success": True}, {"success": False})
    assert await run("redis_get", key="lock") == {"value": "a"}


async def test_xx_writes_only_an_existing_key(run: Run) -> None:
    missing = await run("redis_set", key="name", value="a", xx=True)
    assert missing == {"success": False}
    assert await run("redis_get", key="name") == {"value": None}

    await run("redis_set", key="name", value="a")
    assert await run("redis_set", key="name", value="b", xx=True) == {"success": True}
    assert await run("redis_get", key="name") == {"value": "b"}


async def test_ex_and_px_set_an_expiry(run: Run, raw: Raw) -> None:
    await run("redis_set", key="seconds", value="v", ex=3600)
    await run("redis_set", key="millis", value="v", px=1500)
    await run("redis_set", key="forever", value="v")

    assert 3590 < await raw.ttl("seconds") <= 3600
    assert 0 < await raw.pttl("millis") <= 1500
    assert await raw.ttl("forever") == -1


async def test_exists_with_one_key(run: Run) -> None:
    assert await run("redis_exists", keys="a") == {"exists": False, "count": 0}
    await run("redis_set", key="a", value="1")
    assert await run("redis_exists", keys="a") == {"exists": True, "count": 1}


@pytest.mark.parametrize(
    ("keys", "outputs"),
    [
        (["a", "b"], {"exists": True, "count": 2}),
        (["a", "b", "c"], {"exists": False, "count": 2}),
        (["c", "d"], {"exists": False, "count": 0}),
        (["a", "a", "b"], {"exists": True, "count": 2}),
    ],
)
async def test_exists_is_true_only_when_every_key_exists(
    run: Run, keys: list[str], outputs: dict[str, Any]
) -> None:
    await run("redis_set", key="a", value="1")
    await run("redis_set", key="b", value="2")

    assert await run("redis_exists", keys=keys) == outputs


async def test_incr_counts_from_zero_by_the_amount(run: Run) -> None:
    assert await run("redis_incr", key="views") == {"value": 1}
    assert await run("redis_incr", key="views", amount=10) == {"value": 11}
    assert await run("redis_incr", key="views", amount=-4) == {"value": 7}
    assert await run("redis_get", key="views") == {"value": "7"}


async def test_incr_of_text_keeps_the_redis_error(run: Run) -> None:
    await run("redis_set", key="name", value="Alice")

    with pytest.raises(ResponseError, match="not an integer"):
        await run("redis_incr", key="name")


async def test_delete_counts_the_keys_that_existed(run: Run) -> None:
    for key in ("a", "b", "c"):
        await run("redis_set", key=key, value="1")

    assert await run("redis_delete", keys="a") == {"deleted": 1}
    assert await run("redis_delete", keys=["a", "b", "c", "z"]) == {"deleted": 2}
    assert await run("redis_exists", keys=["a", "b", "c"]) == {"exists": False, "count": 0}


async def test_expire_applies_to_existing_keys_only(run: Run, raw: Raw) -> None:
    await run("redis_set", key="session", value="s")

    assert await run("redis_expire", key="session", seconds=60) == {"success": True}
    assert await run("redis_expire", key="nobody", seconds=60) == {"success": False}
    assert 50 < await raw.ttl("session") <= 60


@pytest.mark.parametrize(
    ("task", "arguments", "complaint"),
    [
        ("redis_get", {"key": 1}, "'key' must be a string, got int 1"),
        ("redis_set", {"key": None, "value": "v"}, "'key' must be a string"),
        ("redis_set", {"key": "k", "value": "v", "nx": True, "xx": True}, "exclude each other"),
        ("redis_set", {"key": "k", "value": "v", "ex": 1, "px": 1}, "either 'ex'.*or 'px'"),
        ("redis_set", {"key": "k", "value": "v", "ex": 0}, "'ex' must be an integer > 0"),
        ("redis_set", {"key": "k", "value": "v", "px": 1.5}, "'px' must be an integer > 0"),
        ("redis_set", {"key": "k", "value": "v", "nx": "yes"}, "'nx' must be true or false"),
        ("redis_set", {"key": "k", "value": "v", "xx": 1}, "'xx' must be true or false"),
        ("redis_exists", {"keys": []}, "'keys' must be a key or a non-empty list"),
        ("redis_exists", {"keys": ["a", 2]}, r"'keys\[1\]' must be a string"),
        ("redis_delete", {"keys": None}, "'keys' must be a key or a non-empty list"),
        ("redis_incr", {"key": "k", "amount": 1.5}, "'amount' must be an integer"),
        ("redis_incr", {"key": "k", "amount": True}, "'amount' must be an integer"),
        ("redis_expire", {"key": "k", "seconds": 0}, "'seconds' must be an integer > 0"),
        ("redis_expire", {"key": "k", "seconds": "60"}, "'seconds' must be an integer > 0"),
    ],
)
async def test_badly_shaped_arguments_fail_without_retry(
    run: Run, raw: Raw, task: str, arguments: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(NonRetryableError, match=complaint):
        await run(task, **arguments)

    assert await raw.dbsize() == 0


def test_specs_describe_parameters_outputs_and_connection() -> None:
    catalog = registry.catalog()

    expected = {
        "redis_get": ({"key"}, set(), {"value"}),
        "redis_set": ({"key", "value"}, {"ex", "px", "nx", "xx"}, {"success"}),
        "redis_exists": ({"keys"}, set(), {"exists", "count"}),
        "redis_incr": ({"key"}, {"amount"}, {"value"}),
        "redis_delete": ({"keys"}, set(), {"deleted"}),
        "redis_expire": ({"key", "seconds"}, set(), {"success"}),
    }
    assert {
        name: (set(spec.required_params), set(spec.optional_params), set(spec.outputs or ()))
        for name, spec in catalog.items()
    } == expected
    for spec in catalog.values():
        assert spec.builtin
        assert spec.connection_types == {"redis"}
        assert spec.connection_required
        assert spec.description

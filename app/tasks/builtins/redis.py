"""Built-in Redis tasks: `redis_get`, `redis_set`, `redis_exists`, `redis_incr`, `redis_delete`,
`redis_expire`.

Each receives a `redis.asyncio.Redis` client. Values that are not strings are stored as compact
JSON; `redis_get` gives JSON objects and arrays back decoded and any other string as it is, so
a mapping cached by `redis_set` comes back as a mapping. Errors from Redis keep their redis-py
type; a badly shaped step raises `NonRetryableError`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeGuard

from app.errors import NonRetryableError
from app.tasks.registry import TaskRegistry

if TYPE_CHECKING:
    from redis.asyncio import Redis

registry = TaskRegistry()

_REDIS = {"builtin": True, "connection_types": frozenset({"redis"}), "connection_required": True}


@registry.register(
    "redis_get",
    outputs=["value"],
    description="Read a key; JSON objects and arrays come back decoded, missing keys as null",
    **_REDIS,
)
async def redis_get(key: str, *, connection: Redis) -> dict[str, Any]:
    stored = await connection.get(_key(key))
    return {"value": _decoded(key, stored)}


@registry.register(
    "redis_set",
    outputs=["success"],
    description="Write a key (non-strings as JSON), optionally with expiry and NX/XX conditions",
    **_REDIS,
)
async def redis_set(
    key: str,
    value: Any,
    *,
    ex: int | None = None,
    px: int | None = None,
    nx: bool = False,
    xx: bool = False,
    connection: Redis,
) -> dict[str, Any]:
    if ex is not None and px is not None:
        raise NonRetryableError("give either 'ex' (seconds) or 'px' (milliseconds), not both")
    nx, xx = _flag("nx", nx), _flag("xx", xx)
    if nx and xx:
        raise NonRetryableError(
            "'nx' (only if missing) and 'xx' (only if present) exclude each other"
        )
    written = await connection.set(
        _key(key),
        _encoded(value),
        ex=_optional_positive("ex", ex),
        px=_optional_positive("px", px),
        nx=nx,
        xx=xx,
    )
    return {"success": bool(written)}  # None when the nx/xx condition kept the old value


@registry.register(
    "redis_exists",
    outputs=["exists", "count"],
    description="Whether every given key exists, and how many of them do",
    **_REDIS,
)
async def redis_exists(keys: str | list[str], *, connection: Redis) -> dict[str, Any]:
    names = _keys(keys)
    count = await connection.exists(*names)
    return {"exists": count == len(names), "count": count}


@registry.register(
    "redis_incr",
    outputs=["value"],
    description="Add an integer to a key (a missing key counts as 0); returns the new value",
    **_REDIS,
)
async def redis_incr(key: str, amount: int = 1, *, connection: Redis) -> dict[str, Any]:
    if not _is_integer(amount):
        raise NonRetryableError(f"'amount' must be an integer, got {_describe(amount)}")
    return {"value": await connection.incrby(_key(key), amount)}


@registry.register(
    "redis_delete",
    outputs=["deleted"],
    description="Delete keys; returns how many existed",
    **_REDIS,
)
async def redis_delete(keys: str | list[str], *, connection: Redis) -> dict[str, Any]:
    return {"deleted": await connection.delete(*_keys(keys))}


@registry.register(
    "redis_expire",
    outputs=["success"],
    description="Let a key expire after some seconds; false when the key does not exist",
    **_REDIS,
)
async def redis_expire(key: str, seconds: int, *, connection: Redis) -> dict[str, Any]:
    applied = await connection.expire(_key(key), _positive("seconds", seconds))
    return {"success": bool(applied)}


def _encoded(value: Any) -> str | bytes:
    if isinstance(value, str | bytes):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


def _decoded(key: str, stored: str | bytes | None) -> Any:
    if stored is None:
        return None
    if isinstance(stored, bytes):  # the client was opened with decode_responses: false
        try:
            stored = stored.decode()
        except UnicodeDecodeError:
            raise NonRetryableError(f"the value of key {key!r} is not UTF-8 text") from None
    if stored.lstrip().startswith(("{", "[")):
        try:
            decoded = json.loads(stored)
        except ValueError:
            return stored  # text that merely starts like JSON
        if isinstance(decoded, dict | list):
            return decoded
    return stored


def _key(key: object) -> str:
    if not isinstance(key, str):
        raise NonRetryableError(f"'key' must be a string, got {_describe(key)}")
    return key


def _keys(keys: object) -> list[str]:
    """One key or a list of keys, each counted once."""
    if isinstance(keys, str):
        return [keys]
    if not isinstance(keys, list) or not keys:
        raise NonRetryableError(
            f"'keys' must be a key or a non-empty list of keys, got {_describe(keys)}"
        )
    for index, key in enumerate(keys):
        if not isinstance(key, str):
            raise NonRetryableError(f"'keys[{index}]' must be a string, got {_describe(key)}")
    return list(dict.fromkeys(keys))


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise NonRetryableError(f"{name!r} must be true or false, got {_describe(value)}")
    return value


def _positive(name: str, value: object) -> int:
    if not _is_integer(value) or value <= 0:
        raise NonRetryableError(f"{name!r} must be an integer > 0, got {_describe(value)}")
    return value


def _optional_positive(name: str, value: object) -> int | None:
    return None if value is None else _positive(name, value)


def _is_integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"

"""The `redis` connection: one `redis.asyncio.Redis` client over a bounded connection pool.

Every attempt is lent the same client; the client checks a connection out of its pool for each
command. The pool blocks when `max_connections` are busy (redis-py's default pool would raise
"Too many connections" instead), so a burst of fan-out tasks queues rather than fails; a step's
timeout bounds the wait. redis is imported when the client is opened, not when this module is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.connections.base import ConnectionPlugin
from app.connections.params import ConnectionParams
from app.connections.urls import connection_failed, redact_url
from app.errors import ConnectionFailedError, DriverMissingError

if TYPE_CHECKING:
    from redis.asyncio import Redis

_SCHEMES = ("redis://", "rediss://", "unix://")
_KNOWN_PARAMS = frozenset({"url", "max_connections", "decode_responses", "socket_timeout"})


@dataclass(frozen=True)
class RedisSettings:
    url: str
    max_connections: int = 50
    decode_responses: bool = True
    socket_timeout: float | None = None  # seconds for connecting and for each reply

    @classmethod
    def read(cls, name: str, params: Mapping[str, Any]) -> RedisSettings:
        reader = ConnectionParams(name, params, _KNOWN_PARAMS)
        url = reader.text("url")
        if not url.startswith(_SCHEMES):
            raise reader.problem(
                f"'url' must start with redis://, rediss:// or unix://, got {redact_url(url)!r}"
            )
        return cls(
            url=url,
            max_connections=reader.integer("max_connections", cls.max_connections, minimum=1),
            decode_responses=reader.flag("decode_responses", cls.decode_responses),
            socket_timeout=reader.optional_seconds("socket_timeout"),
        )


class RedisConnection(ConnectionPlugin):
    type = "redis"
    driver = "redis"
    description = "Redis through redis.asyncio; tasks receive a shared redis.asyncio.Redis client"

    def __init__(self, name: str, params: Mapping[str, Any]) -> None:
        super().__init__(name, params)
        self.settings = RedisSettings.read(name, self.params)
        self._client: Redis | None = None

    async def open(self) -> None:
        try:
            # the driver is needed only by flows using it
            from redis.asyncio import BlockingConnectionPool, Redis  # noqa: PLC0415
        except ImportError:
            raise DriverMissingError(
                f"connection {self.name!r} needs the 'redis' package: pip install redis"
            ) from None
        try:
            pool = BlockingConnectionPool.from_url(
                self.settings.url,
                max_connections=self.settings.max_connections,
                timeout=None,  # wait for a free connection; the step's timeout bounds the wait
                decode_responses=self.settings.decode_responses,
                socket_timeout=self.settings.socket_timeout,
                socket_connect_timeout=self.settings.socket_timeout,
            )
        except Exception as error:  # a URL redis-py cannot parse
            raise connection_failed(self.name, self.settings.url, error) from None
        client = Redis.from_pool(pool)
        try:
            await client.ping()
        except Exception as error:
            await client.aclose()
            raise connection_failed(self.name, self.settings.url, error) from None
        self._client = client

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Redis]:
        if self._client is None:
            raise ConnectionFailedError(f"connection {self.name!r} is not open")
        yield self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

"""The `redis` connection: one `redis.asyncio.Redis` client over a bounded connection pool.

Every attempt is lent the same client; the client checks a connection out of its pool for each
command. The pool blocks when `max_connections` are busy (redis-py's default pool would raise
"Too many connections" instead), so a burst of fan-out tasks queues rather than fails; a step's
timeout bounds the wait. redis is imported when the client is opened, not when this module is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.connections.base import ConnectionPlugin
from app.connections.limits import DEFAULT_LIMITS, ConnectionLimits
from app.connections.params import ConnectionParams
from app.connections.urls import connection_failed, redact_url
from app.errors import ConnectionFailedError, DriverMissingError

if TYPE_CHECKING:
    from redis.asyncio import Redis

_SCHEMES = ("redis://", "rediss://", "unix://")
_KNOWN_PARAMS = frozenset(
    {"url", "max_connections", "decode_responses", "socket_timeout", "socket_connect_timeout"}
)


@dataclass(frozen=True)
class RedisSettings:
    url: str
    max_connections: int = 50
    decode_responses: bool = True
    socket_timeout: float = 300.0  # seconds for each reply (CONNECTION_COMMAND_TIMEOUT)
    socket_connect_timeout: float = 10.0  # seconds to connect (CONNECTION_CONNECT_TIMEOUT)

    @classmethod
    def read(
        cls, name: str, params: Mapping[str, Any], limits: ConnectionLimits = DEFAULT_LIMITS
    ) -> RedisSettings:
        reader = ConnectionParams(name, params, _KNOWN_PARAMS)
        url = reader.text("url")
        if not url.startswith(_SCHEMES):
            raise reader.problem(
                f"'url' must start with redis://, rediss:// or unix://, got {redact_url(url)!r}"
            )
        socket_timeout = reader.optional_seconds("socket_timeout")
        # `socket_timeout` alone bounds connecting too, as it does in redis-py.
        connect_default = socket_timeout or limits.connect_timeout
        return cls(
            url=url,
            max_connections=reader.size(
                "max_connections", cls.max_connections, minimum=1, maximum=limits.max_pool_size
            ),
            decode_responses=reader.flag("decode_responses", cls.decode_responses),
            socket_timeout=socket_timeout or limits.command_timeout,
            socket_connect_timeout=reader.seconds("socket_connect_timeout", connect_default),
        )


class RedisConnection(ConnectionPlugin):
    type = "redis"
    driver = "redis"
    description = "Redis through redis.asyncio; tasks receive a shared redis.asyncio.Redis client"

    def __init__(self, name: str, params: Mapping[str, Any], **options: Any) -> None:
        super().__init__(name, params, **options)
        self.settings = RedisSettings.read(name, self.params, self.limits)
        self._client: Redis | None = None

    @property
    def size(self) -> int:
        return self.settings.max_connections

    @property
    def open_timeout(self) -> float:
        return self.settings.socket_connect_timeout

    async def open(self) -> None:
        try:
            # the driver is needed only by flows using it
            from redis.asyncio import BlockingConnectionPool, Redis  # noqa: PLC0415
            from redis.asyncio.connection import parse_url  # noqa: PLC0415
        except ImportError:
            raise DriverMissingError(
                f"connection {self.name!r} needs the 'redis' package: pip install redis"
            ) from None
        settings = self.settings
        url, timeout = settings.url, settings.socket_connect_timeout
        try:
            options: dict[str, Any] = dict(parse_url(url))
            options.update(await self._checked_destination(options))
            pool = BlockingConnectionPool(
                max_connections=settings.max_connections,
                timeout=None,  # wait for a free connection; the step's timeout bounds the wait
                decode_responses=settings.decode_responses,
                socket_timeout=settings.socket_timeout,
                socket_connect_timeout=timeout,
                **options,
            )
        except Exception as error:  # a URL redis-py cannot parse, a refused destination
            raise connection_failed(self.name, url, error, timeout=timeout) from None
        client = Redis.from_pool(pool)
        try:
            # Connecting includes the handshake: a server that accepts and never answers
            # fails here, within the connect timeout.
            async with asyncio.timeout(timeout):
                await client.ping()
        except Exception as error:
            await client.aclose()
            raise connection_failed(self.name, url, error, timeout=timeout) from None
        self._client = client

    async def _checked_destination(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The connection class and destination pinned to the checked addresses; nothing
        (redis-py's own classes) when the policy checks nothing."""
        policy = self.policy
        if not policy.checks_addresses:
            return {}
        subject = f"connection {self.name!r}"
        if "path" in options:
            raise policy.refuse_unix_socket(subject, str(options["path"]))
        # redis-py is a dependency of this plugin only: import its subclasses on demand.
        from app.connections import redis_pinned  # noqa: PLC0415

        host, port = str(options.get("host", "localhost")), int(options.get("port", 6379))
        async with asyncio.timeout(self.settings.socket_connect_timeout):
            destination = await policy.destination(subject, host, port)
        tls = options.get("connection_class") is not None  # rediss:// sets SSLConnection
        pinned = redis_pinned.PinnedSSLConnection if tls else redis_pinned.PinnedConnection
        return {"connection_class": pinned, "destination": destination}

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Redis]:
        if self._client is None:
            raise ConnectionFailedError(f"connection {self.name!r} is not open")
        yield self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

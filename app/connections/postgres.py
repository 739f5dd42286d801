"""The `postgres` connection: an asyncpg pool; each attempt borrows one pooled connection.

asyncpg is imported when a pool is opened, not when this module is, so a process without the
driver can still load every flow that does not use PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.connections.base import ConnectionPlugin
from app.connections.params import ConnectionParams
from app.connections.urls import connection_failed, redact_url
from app.errors import ConnectionFailedError, DriverMissingError

if TYPE_CHECKING:
    import asyncpg

_SCHEMES = ("postgresql://", "postgres://")
_KNOWN_PARAMS = frozenset(
    {"url", "pool_size", "min_size", "timeout", "command_timeout", "statement_cache_size"}
)


@dataclass(frozen=True)
class PostgresSettings:
    url: str
    pool_size: int = 10
    min_size: int = 1
    timeout: float = 30.0  # seconds to establish one connection
    command_timeout: float | None = None
    statement_cache_size: int | None = None

    @classmethod
    def read(cls, name: str, params: Mapping[str, Any]) -> PostgresSettings:
        reader = ConnectionParams(name, params, _KNOWN_PARAMS)
        url = _asyncpg_url(reader)
        pool_size = reader.integer("pool_size", cls.pool_size, minimum=1)
        min_size = reader.integer("min_size", cls.min_size, minimum=0)
        if min_size > pool_size:
            raise reader.problem(f"'min_size' ({min_size}) exceeds 'pool_size' ({pool_size})")
        return cls(
            url=url,
            pool_size=pool_size,
            min_size=min_size,
            timeout=reader.seconds("timeout", cls.timeout),
            command_timeout=reader.optional_seconds("command_timeout"),
            statement_cache_size=reader.optional_integer("statement_cache_size", minimum=0),
        )

    def pool_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "dsn": self.url,
            "min_size": self.min_size,
            "max_size": self.pool_size,
            "timeout": self.timeout,
        }
        if self.command_timeout is not None:
            options["command_timeout"] = self.command_timeout
        if self.statement_cache_size is not None:
            options["statement_cache_size"] = self.statement_cache_size
        return options


class PostgresConnection(ConnectionPlugin):
    type = "postgres"
    driver = "asyncpg"
    description = "PostgreSQL through an asyncpg pool; tasks receive a pooled asyncpg connection"

    close_timeout: float = 10.0  # seconds; then connections still borrowed are terminated

    def __init__(self, name: str, params: Mapping[str, Any]) -> None:
        super().__init__(name, params)
        self.settings = PostgresSettings.read(name, self.params)
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        try:
            # the driver is needed only by flows using it
            import asyncpg  # noqa: PLC0415
        except ImportError:
            raise DriverMissingError(
                f"connection {self.name!r} needs the 'asyncpg' package: pip install asyncpg"
            ) from None
        try:
            pool = await asyncpg.create_pool(**self.settings.pool_options())
        except Exception as error:
            raise connection_failed(self.name, self.settings.url, error) from None
        try:
            await pool.fetchval("SELECT 1")  # with min_size 0 the pool has not connected yet
        except Exception as error:
            pool.terminate()
            raise connection_failed(self.name, self.settings.url, error) from None
        self._pool = pool

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Any]:
        if self._pool is None:
            raise ConnectionFailedError(f"connection {self.name!r} is not open")
        # No acquire timeout: a full pool makes the attempt wait, bounded by the step timeout.
        async with self._pool.acquire() as connection:
            yield connection

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self.close_timeout)
        except TimeoutError:
            pool.terminate()


def _asyncpg_url(reader: ConnectionParams) -> str:
    """The URL asyncpg understands; SQLAlchemy's `postgresql+asyncpg://` is accepted too."""
    url = reader.text("url")
    scheme, separator, rest = url.partition("://")
    url = scheme.removesuffix("+asyncpg") + separator + rest
    if not url.startswith(_SCHEMES):
        raise reader.problem(
            f"'url' must start with postgresql:// or postgres://, got {redact_url(url)!r}"
        )
    return url

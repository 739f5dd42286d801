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
from app.connections.limits import DEFAULT_LIMITS, ConnectionLimits
from app.connections.params import ConnectionParams
from app.connections.postgres_targets import PostgresTarget
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
    timeout: float = 10.0  # seconds to establish one connection (CONNECTION_CONNECT_TIMEOUT)
    command_timeout: float = 300.0  # seconds per statement (CONNECTION_COMMAND_TIMEOUT)
    statement_cache_size: int | None = None

    @classmethod
    def read(
        cls, name: str, params: Mapping[str, Any], limits: ConnectionLimits = DEFAULT_LIMITS
    ) -> PostgresSettings:
        reader = ConnectionParams(name, params, _KNOWN_PARAMS)
        url = _asyncpg_url(reader)
        pool_size = reader.size("pool_size", cls.pool_size, minimum=1, maximum=limits.max_pool_size)
        min_size = reader.integer("min_size", min(cls.min_size, pool_size), minimum=0)
        if min_size > pool_size:
            raise reader.problem(f"'min_size' ({min_size}) exceeds 'pool_size' ({pool_size})")
        return cls(
            url=url,
            pool_size=pool_size,
            min_size=min_size,
            timeout=reader.seconds("timeout", limits.connect_timeout),
            command_timeout=reader.seconds("command_timeout", limits.command_timeout),
            statement_cache_size=reader.optional_integer("statement_cache_size", minimum=0),
        )

    def pool_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "dsn": self.url,
            "min_size": self.min_size,
            "max_size": self.pool_size,
            "timeout": self.timeout,
            "command_timeout": self.command_timeout,
        }
        if self.statement_cache_size is not None:
            options["statement_cache_size"] = self.statement_cache_size
        return options


class PostgresConnection(ConnectionPlugin):
    type = "postgres"
    driver = "asyncpg"
    description = "PostgreSQL through an asyncpg pool; tasks receive a pooled asyncpg connection"

    close_timeout: float = 10.0  # seconds; then connections still borrowed are terminated

    def __init__(self, name: str, params: Mapping[str, Any], **options: Any) -> None:
        super().__init__(name, params, **options)
        self.settings = PostgresSettings.read(name, self.params, self.limits)
        self._pool: asyncpg.Pool | None = None

    @property
    def size(self) -> int:
        return self.settings.pool_size

    @property
    def open_timeout(self) -> float:
        return self.settings.timeout

    async def open(self) -> None:
        try:
            # the driver is needed only by flows using it
            import asyncpg  # noqa: PLC0415
        except ImportError:
            raise DriverMissingError(
                f"connection {self.name!r} needs the 'asyncpg' package: pip install asyncpg"
            ) from None
        url, timeout = self.settings.url, self.settings.timeout
        try:
            async with asyncio.timeout(timeout):
                pinned = await self._checked_destination()
            pool = await asyncpg.create_pool(**self.settings.pool_options(), **pinned)
        except Exception as error:
            raise connection_failed(self.name, url, error, timeout=timeout) from None
        try:
            await pool.fetchval("SELECT 1")  # with min_size 0 the pool has not connected yet
        except Exception as error:
            pool.terminate()
            raise connection_failed(self.name, url, error, timeout=timeout) from None
        self._pool = pool

    async def _checked_destination(self) -> dict[str, Any]:
        """asyncpg's `host`, `port` and `database`, pinned to the addresses the policy allowed;
        nothing (the URL as it is) when the policy checks nothing."""
        policy = self.policy
        if not policy.checks_addresses and not policy.guards_store:
            return {}
        target = PostgresTarget.parse(self.settings.url)
        subject = f"connection {self.name!r}"
        hosts: list[str] = []
        ports: list[int] = []
        for host, port in target.hosts:
            if host.startswith("/"):  # a socket may be the store's server: nothing to check
                raise policy.refuse_unix_socket(subject, host)
            destination = await policy.destination(subject, host, port, database=target.database)
            # verify-full checks the certificate against the host name, which asyncpg takes
            # from `host`: keep the name (docs/architecture.md says why that stays safe).
            names = [host] if target.verify_full else list(destination.addresses)
            hosts += names
            ports += [port] * len(names)
        return {"host": hosts, "port": ports, "database": target.database}

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Any]:
        pool = self._pool
        if pool is None:
            raise ConnectionFailedError(f"connection {self.name!r} is not open")
        # No acquire timeout: a full pool makes the attempt wait, bounded by the step timeout.
        try:
            connection = await pool.acquire()
        except Exception as error:  # a new connection of the pool failed: name it, redacted
            raise connection_failed(
                self.name, self.settings.url, error, timeout=self.settings.timeout
            ) from None
        try:
            yield connection
        finally:
            await pool.release(connection)

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

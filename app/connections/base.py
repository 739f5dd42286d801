"""Connection plugins: how a named connection of a flow is opened, pooled, lent and closed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar

from app.connections.destinations import ALLOW_ALL, DestinationPolicy
from app.connections.limits import DEFAULT_LIMITS, ConnectionLimits


class ConnectionPlugin(ABC):
    """One open pool (or client) for one connection configuration.

    `params` are the connection's fields from the flow with `${env...}` already resolved;
    `name` is the connection's name in the flow, used in error messages. `policy` says where
    it may connect (checked when it opens), `limits` its default timeouts and largest size.
    """

    type: ClassVar[str]  # the `type:` of a connection in a flow, e.g. "postgres"
    driver: ClassVar[str]  # the module that must be importable, e.g. "asyncpg"
    description: ClassVar[str]

    def __init__(
        self,
        name: str,
        params: Mapping[str, Any],
        *,
        policy: DestinationPolicy = ALLOW_ALL,
        limits: ConnectionLimits = DEFAULT_LIMITS,
    ) -> None:
        self.name = name
        self.params = dict(params)
        self.policy = policy
        self.limits = limits

    @property
    def size(self) -> int:
        """The most connections this plugin may hold at once: its share of the process's
        CONNECTION_MAX_TOTAL while it is open."""
        return 1

    @property
    def open_timeout(self) -> float:
        """Seconds within which `open` connects, or fails."""
        return self.limits.connect_timeout

    @abstractmethod
    async def open(self) -> None:
        """Open the pool or client; a refused connection raises ConnectionFailedError."""

    @abstractmethod
    def session(self) -> AbstractAsyncContextManager[Any]:
        """Lend what a task receives as `connection` for the duration of one attempt."""

    @abstractmethod
    async def close(self) -> None:
        """Close the pool or client."""

"""`ConnectionManager`: opens connections lazily, pools them per process, closes idle ones.

Two flows (or two runs) that declare the same connection configuration share one pool. The
manager is owned by whoever runs flows (the CLI, a library user, the service) and closed once.

- **Opening.** Each configuration opens in a task of its own; the steps that want it meanwhile
  wait for that task, and nobody else does: a slow open (a server that accepts and never
  answers) delays only its own configuration, never another's.
- **Where.** Every plugin receives the `DestinationPolicy` and checks its destination when it
  opens (see `destinations.py`).
- **How many.** Each open pool holds its largest size (`pool_size`, `max_connections`) of the
  process's `max_total`. A pool that does not fit first closes unused pools (least recently
  used first), then waits for room up to its connect timeout, then fails (ConnectionLimitError).
- **How long.** A pool nobody has borrowed for `idle_seconds` is closed; a pool lent to a step
  never is. The next step that needs it opens it again.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext, suppress
from dataclasses import dataclass
from typing import Any

from app.connections.base import ConnectionPlugin
from app.connections.destinations import ALLOW_ALL, DestinationPolicy
from app.connections.http import STANDALONE_HTTP, HttpConnection
from app.connections.limits import DEFAULT_LIMITS, ConnectionLimits
from app.connections.postgres import PostgresConnection
from app.connections.redis import RedisConnection
from app.errors import ConnectionLimitError, DriverMissingError, UnknownConnectionError

_logger = logging.getLogger(__name__)

# What `http_request` without a connection is lent: a client of its own, with no base URL and
# no headers, shared by every such step of the process.
STANDALONE_HTTP_SIZE = 100
_HTTP_ONLY = frozenset({"http"})
_NO_CONNECTION: AbstractAsyncContextManager[None] = nullcontext()  # stateless: shared


@dataclass(frozen=True)
class PluginInfo:
    type: str
    driver: str
    installed: bool
    description: str


@dataclass(eq=False)
class _Pool:
    key: str
    plugin: ConnectionPlugin
    borrowers: int = 0
    last_used: float = 0.0  # time.monotonic() when last given back


class ConnectionManager:
    def __init__(
        self,
        plugins: Mapping[str, type[ConnectionPlugin]] | None = None,
        *,
        policy: DestinationPolicy = ALLOW_ALL,
        limits: ConnectionLimits = DEFAULT_LIMITS,
    ) -> None:
        self._plugin_types = dict(plugins) if plugins is not None else default_plugins()
        self.policy = policy
        self.limits = limits
        self._pools: dict[str, _Pool] = {}
        self._opening: dict[str, asyncio.Task[None]] = {}
        self._held = 0  # connections counted against limits.max_total by open(ing) pools
        self._room = asyncio.Event()  # set when a pool is given back or closed
        self._reaper: asyncio.Task[None] | None = None

    @property
    def types(self) -> frozenset[str]:
        """The connection types this manager can open."""
        return frozenset(self._plugin_types)

    @property
    def held(self) -> int:
        """Connections counted against CONNECTION_MAX_TOTAL by the pools open now."""
        return self._held

    def open_pools(self) -> int:
        return len(self._pools)

    def session(
        self, name: str, connection_type: str, params: Mapping[str, Any]
    ) -> AbstractAsyncContextManager[Any]:
        """Lend the connection named `name` (configured by `params`) for one attempt."""
        key = connection_type + ":" + json.dumps(params, sort_keys=True, default=str)
        return self._lend(key, lambda: self._new_plugin(name, connection_type, params))

    def default_session(self, connection_types: frozenset[str]) -> AbstractAsyncContextManager[Any]:
        """What a task taking an optional connection of `connection_types` is lent when its
        step names none: `http_request` a shared client checked by the policy; others None."""
        if connection_types != _HTTP_ONLY:  # most steps: one comparison, nothing opened
            return _NO_CONNECTION
        plugin_type = self._plugin_types.get("http")
        if plugin_type is None:
            return _NO_CONNECTION
        params = {"max_connections": min(STANDALONE_HTTP_SIZE, self.limits.max_pool_size)}
        return self._lend(
            "<standalone http>",
            lambda: plugin_type(STANDALONE_HTTP, params, policy=self.policy, limits=self.limits),
        )

    @asynccontextmanager
    async def _lend(
        self, key: str, new_plugin: Callable[[], ConnectionPlugin]
    ) -> AsyncIterator[Any]:
        pool = await self._borrow(key, new_plugin)
        try:
            async with pool.plugin.session() as connection:
                yield connection
        finally:
            pool.borrowers -= 1
            pool.last_used = time.monotonic()
            if pool.borrowers == 0:
                self._room.set()  # a pool waiting for room may close this one now

    async def aclose(self) -> None:
        if not self._pools and not self._opening and self._reaper is None:
            return  # the common case of a library run that opened nothing
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.cancel()
            with suppress(asyncio.CancelledError):
                await reaper
        opening = list(self._opening.values())
        for task in opening:
            task.cancel()
        await asyncio.gather(*opening, return_exceptions=True)
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await self._close(pool)

    async def _borrow(self, key: str, new_plugin: Callable[[], ConnectionPlugin]) -> _Pool:
        while True:
            pool = self._pools.get(key)
            if pool is not None:
                pool.borrowers += 1  # no await since the lookup: the reaper cannot slip in
                return pool
            opening = self._opening.get(key)
            if opening is None:
                opening = asyncio.ensure_future(self._open(key, new_plugin()))
                opening.add_done_callback(_observe)
                self._opening[key] = opening
            # Shielded: a step that gives up (its timeout) does not cancel the open for others.
            await asyncio.shield(opening)

    async def _open(self, key: str, plugin: ConnectionPlugin) -> None:
        try:
            await self._reserve(plugin)
            try:
                await plugin.open()
            except BaseException:
                self._give_back(plugin.size)
                raise
            self._pools[key] = _Pool(key, plugin, last_used=time.monotonic())
            if self._reaper is None or self._reaper.done():
                self._reaper = asyncio.create_task(self._reap(), name="connection-pool-reaper")
        finally:
            self._opening.pop(key, None)

    async def _reserve(self, plugin: ConnectionPlugin) -> None:
        """Count the plugin's connections against max_total: close unused pools to make
        room, else wait for room up to the plugin's connect timeout."""
        size, total = plugin.size, self.limits.max_total
        if size > total:
            raise ConnectionLimitError(
                f"connection {plugin.name!r} needs {size} connection(s), more than "
                f"CONNECTION_MAX_TOTAL ({total}) allows"
            )
        deadline = time.monotonic() + plugin.open_timeout
        while self._held + size > total:
            unused = [pool for pool in self._pools.values() if pool.borrowers == 0]
            if unused:
                await self._close(min(unused, key=lambda pool: pool.last_used))
                continue
            remaining = deadline - time.monotonic()
            self._room.clear()
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    await self._room.wait()
            except TimeoutError:
                raise ConnectionLimitError(
                    f"connection {plugin.name!r} needs {size} connection(s), but the pools in "
                    f"use hold {self._held} of the {total} that CONNECTION_MAX_TOTAL allows "
                    f"(waited {plugin.open_timeout:g}s for room)"
                ) from None
        self._held += size

    def _give_back(self, size: int) -> None:
        self._held -= size
        self._room.set()

    async def _close(self, pool: _Pool) -> None:
        if self._pools.get(pool.key) is pool:
            del self._pools[pool.key]  # before any await: nobody borrows it any more
        try:
            await pool.plugin.close()
        finally:
            self._give_back(pool.plugin.size)

    async def _reap(self) -> None:
        """Close the pools nobody borrowed for idle_seconds; stop when none is open."""
        idle = self.limits.idle_seconds
        while self._pools:
            await asyncio.sleep(min(idle / 2, 30.0))
            now = time.monotonic()
            for pool in list(self._pools.values()):
                if pool.borrowers == 0 and now - pool.last_used >= idle:
                    try:
                        await self._close(pool)
                    except Exception:
                        _logger.exception("closing the idle connection %r failed", pool.plugin.name)

    def _new_plugin(
        self, name: str, connection_type: str, params: Mapping[str, Any]
    ) -> ConnectionPlugin:
        plugin_type = self._plugin_types.get(connection_type)
        if plugin_type is None:
            known = ", ".join(sorted(self._plugin_types))
            raise UnknownConnectionError(
                f"connection {name!r} has unknown type {connection_type!r} (known: {known})"
            )
        if not driver_installed(plugin_type.driver):
            raise DriverMissingError(
                f"connection {name!r} needs the {plugin_type.driver!r} package, which is not "
                f"installed: pip install {plugin_type.driver}"
            )
        return plugin_type(name, params, policy=self.policy, limits=self.limits)


def _observe(task: asyncio.Task[None]) -> None:
    """Retrieve a failed open's error even when every step waiting for it gave up."""
    if not task.cancelled():
        task.exception()


def driver_installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def default_plugins() -> dict[str, type[ConnectionPlugin]]:
    return {plugin.type: plugin for plugin in (PostgresConnection, RedisConnection, HttpConnection)}


def available_plugins() -> list[PluginInfo]:
    """Every connection plugin and whether its driver is installed."""
    return [
        PluginInfo(plugin.type, plugin.driver, driver_installed(plugin.driver), plugin.description)
        for plugin in default_plugins().values()
    ]

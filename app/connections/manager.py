"""`ConnectionManager`: opens connections lazily and pools them per process.

Two flows (or two runs) that declare the same connection configuration share one pool. The
manager is owned by whoever runs flows (the CLI, a library user, the service) and closed once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from app.connections.base import ConnectionPlugin
from app.connections.http import HttpConnection
from app.connections.postgres import PostgresConnection
from app.connections.redis import RedisConnection
from app.errors import DriverMissingError, UnknownConnectionError


@dataclass(frozen=True)
class PluginInfo:
    type: str
    driver: str
    installed: bool
    description: str


class ConnectionManager:
    def __init__(self, plugins: Mapping[str, type[ConnectionPlugin]] | None = None) -> None:
        self._plugin_types = dict(plugins) if plugins is not None else default_plugins()
        self._open: dict[str, ConnectionPlugin] = {}
        self._lock = asyncio.Lock()

    @property
    def types(self) -> frozenset[str]:
        """The connection types this manager can open."""
        return frozenset(self._plugin_types)

    @asynccontextmanager
    async def session(
        self, name: str, connection_type: str, params: Mapping[str, Any]
    ) -> AsyncIterator[Any]:
        """Lend the connection named `name` (configured by `params`) for one attempt."""
        plugin = await self._plugin(name, connection_type, params)
        async with plugin.session() as connection:
            yield connection

    async def aclose(self) -> None:
        async with self._lock:
            plugins, self._open = list(self._open.values()), {}
        for plugin in plugins:
            await plugin.close()

    async def _plugin(
        self, name: str, connection_type: str, params: Mapping[str, Any]
    ) -> ConnectionPlugin:
        key = connection_type + ":" + json.dumps(params, sort_keys=True, default=str)
        plugin = self._open.get(key)
        if plugin is not None:
            return plugin
        async with self._lock:  # one pool per configuration, even under concurrent first use
            plugin = self._open.get(key)
            if plugin is None:
                plugin = self._new_plugin(name, connection_type, params)
                await plugin.open()
                self._open[key] = plugin
            return plugin

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
        return plugin_type(name, params)


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

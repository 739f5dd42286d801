"""ConnectionManager: lazy opening, one pool per configuration, clear errors, closing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import pytest

from app.connections.base import ConnectionPlugin
from app.connections.manager import ConnectionManager, available_plugins
from app.errors import DriverMissingError, UnknownConnectionError


class CountingPlugin(ConnectionPlugin):
    type: ClassVar[str] = "counting"
    driver: ClassVar[str] = "json"  # always importable
    description: ClassVar[str] = "test plugin"
    opened: ClassVar[list[str]] = []
    closed: ClassVar[list[str]] = []

    async def open(self) -> None:
        await asyncio.sleep(0)  # a yield point, where a racing second open could slip in
        self.opened.append(self.name)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Any]:
        yield {"name": self.name, **self.params}

    async def close(self) -> None:
        self.closed.append(self.name)


class MissingDriverPlugin(CountingPlugin):
    type: ClassVar[str] = "missing"
    driver: ClassVar[str] = "no_such_driver_module"


@pytest.fixture
def manager() -> ConnectionManager:
    CountingPlugin.opened.clear()
    CountingPlugin.closed.clear()
    return ConnectionManager({"counting": CountingPlugin, "missing": MissingDriverPlugin})


async def borrow(manager: ConnectionManager, name: str, params: Mapping[str, Any]) -> Any:
    async with manager.session(name, "counting", params) as connection:
        return connection


async def test_nothing_opens_until_a_session_is_asked_for(manager: ConnectionManager) -> None:
    assert CountingPlugin.opened == []

    assert await borrow(manager, "db", {"url": "x"}) == {"name": "db", "url": "x"}
    assert CountingPlugin.opened == ["db"]


async def test_one_plugin_per_configuration_even_under_concurrent_first_use(
    manager: ConnectionManager,
) -> None:
    await asyncio.gather(*(borrow(manager, "db", {"url": "x"}) for _ in range(20)))
    await borrow(manager, "other_name_same_config", {"url": "x"})
    await borrow(manager, "db2", {"url": "y"})

    assert CountingPlugin.opened == ["db", "db2"]


async def test_aclose_closes_every_open_plugin(manager: ConnectionManager) -> None:
    await borrow(manager, "a", {"url": "1"})
    await borrow(manager, "b", {"url": "2"})

    await manager.aclose()

    assert sorted(CountingPlugin.closed) == ["a", "b"]


async def test_unknown_type_names_the_connection_and_the_known_types(
    manager: ConnectionManager,
) -> None:
    with pytest.raises(UnknownConnectionError, match=r"'cache' has unknown type 'mongo'.*counting"):
        async with manager.session("cache", "mongo", {}):
            pass


async def test_missing_driver_is_a_clear_error(manager: ConnectionManager) -> None:
    with pytest.raises(DriverMissingError, match="'db' needs the 'no_such_driver_module' package"):
        async with manager.session("db", "missing", {}):
            pass


def test_available_plugins_report_their_drivers() -> None:
    plugins = {plugin.type: plugin for plugin in available_plugins()}

    assert set(plugins) == {"postgres", "redis", "http"}
    assert plugins["postgres"].driver == "asyncpg"
    assert all(plugin.installed for plugin in plugins.values())

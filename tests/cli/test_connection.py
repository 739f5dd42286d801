"""`python -m app connection list|example` (`flowlang connection ...` in the tutorial)."""

from __future__ import annotations

import asyncpg
import pytest

from app.cli import main
from app.cli.connection_examples import EXAMPLES
from app.connections.manager import available_plugins
from app.engine import FlowExecutor
from app.tasks import TaskRegistry

PLUGINS = [plugin.type for plugin in available_plugins()]


def test_connection_list_is_what_connections_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connections"]) == 0
    before = capsys.readouterr().out

    assert main(["connection", "list"]) == 0

    listed = capsys.readouterr().out
    assert listed == before
    for plugin, driver in (("postgres", "asyncpg"), ("redis", "redis"), ("http", "httpx")):
        assert any(
            line.startswith("✅") and plugin in line and driver in line
            for line in listed.splitlines()
        )


@pytest.mark.parametrize("plugin", PLUGINS)
def test_each_plugins_example_is_a_valid_flow_using_that_plugin(
    plugin: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["connection", "example", plugin]) == 0

    definition = FlowExecutor(TaskRegistry()).load(capsys.readouterr().out)
    assert {connection.type for connection in definition.connections.values()} == {plugin}
    assert definition.outputs


def test_an_unknown_plugin_is_refused_naming_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["connection", "example", "mongodb"]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no connection plugin 'mongodb'" in captured.err
    assert all(plugin in captured.err for plugin in PLUGINS)


async def test_the_redis_example_runs(redis_url: str, redis_prefix: str) -> None:
    executor = FlowExecutor(TaskRegistry(), env={"REDIS_URL": redis_url})
    inputs = {"page": "home", "prefix": redis_prefix}

    first = await executor.execute_flow(EXAMPLES["redis"], inputs=inputs)
    second = await executor.execute_flow(EXAMPLES["redis"], inputs=inputs)

    assert first == {"was_cached": False, "cached": {"page": "home"}, "views": 1}
    assert second == {"was_cached": True, "cached": {"page": "home"}, "views": 2}


async def test_the_postgres_example_runs_and_leaves_nothing_behind(postgres_url: str) -> None:
    executor = FlowExecutor(TaskRegistry(), env={"DATABASE_URL": postgres_url})

    outputs = await executor.execute_flow(EXAMPLES["postgres"], inputs={"note": "hello"})

    assert outputs == {
        "database": postgres_url.rsplit("/", 1)[1],
        "note": "hello",
        "notes_written": 2,
    }
    connection = await asyncpg.connect(postgres_url)
    try:
        tables = await connection.fetchval(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'example%'"
        )
    finally:
        await connection.close()
    assert tables == 0

"""Connections as a run sees them: resolved from env, injected, clear errors when refused."""

from __future__ import annotations

import socket

from app.domain.runs import RunStatus
from app.engine import FlowExecutor
from app.tasks import TaskRegistry


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


FLOW = """
flow: Refused
connections:
  cache: {type: redis, url: "${env.CACHE_URL}"}
steps:
  - redis_get: {id: get, connection: cache, key: k}
"""


async def test_refused_connection_fails_the_step_naming_it_without_the_password() -> None:
    url = f"redis://user:hunter2@127.0.0.1:{closed_port()}/0"
    executor = FlowExecutor(env={"CACHE_URL": url})

    result = await executor.run(FLOW)

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.type == "ConnectionFailedError"
    assert "'cache'" in result.error.message
    assert "***" in result.error.message
    assert "hunter2" not in result.error.message


async def test_missing_env_variable_fails_the_step_clearly() -> None:
    result = await FlowExecutor(env={}).run(FLOW)

    assert result.error is not None
    assert "CACHE_URL" in result.error.message


async def test_custom_task_receives_the_steps_connection(redis_url: str) -> None:
    registry = TaskRegistry()

    @registry.register("Ping")
    async def ping(connection: object) -> dict[str, object]:
        return {"pong": await connection.ping()}  # type: ignore[attr-defined]

    flow = """
flow: Inject
connections:
  cache: {type: redis, url: "${env.REDIS_URL}"}
steps:
  - task: Ping
    id: p
    connection: cache
outputs: {pong: "${p.pong}"}
"""
    outputs = await FlowExecutor(registry, env={"REDIS_URL": redis_url}).execute_flow(flow)

    assert outputs == {"pong": True}

"""`http_request` without a connection, run by the engine: it is lent the manager's shared
client, so the destination policy applies, and a refusal fails the step without retries."""

from __future__ import annotations

from app.connections.destinations import DestinationPolicy
from app.connections.manager import ConnectionManager
from app.domain.runs import RunStatus, TaskKey
from app.engine import FlowExecutor
from app.engine.memory_store import InMemoryRunStore
from tests.http_server import LocalHttpServer

FLOW = """
flow: Fetch
inputs: {url: {type: string}}
steps:
  - http_request:
      id: fetch
      url: "${inputs.url}"
      retry: {max_attempts: 3, delay: 0.01}
outputs: {status: "${fetch.status_code}"}
"""


async def test_a_refused_url_fails_the_step_at_once_naming_it(
    http_server: LocalHttpServer,
) -> None:
    store = InMemoryRunStore()
    manager = ConnectionManager(policy=DestinationPolicy.build(deny_private_networks=True))
    try:
        result = await FlowExecutor(store=store, connections=manager).run(
            FLOW, {"url": http_server.url + "/json"}
        )
    finally:
        await manager.aclose()

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.step == "fetch"
    assert result.error.type == "DestinationRefusedError"
    assert result.error.message.startswith(f"step 'fetch': GET {http_server.url}/json: ")
    assert "is a loopback address" in result.error.message
    assert http_server.requests == []
    task = store.runs[result.run_id].tasks[TaskKey("fetch")]
    assert task.attempts == 1  # retrying cannot help


async def test_an_allowed_url_is_fetched_through_the_shared_client(
    http_server: LocalHttpServer,
) -> None:
    manager = ConnectionManager(policy=DestinationPolicy.build(["127.0.0.1"]))
    executor = FlowExecutor(connections=manager)
    try:
        for _ in range(2):
            outputs = await executor.execute_flow(FLOW, {"url": http_server.url + "/json"})
            assert outputs == {"status": 200}
        assert manager.open_pools() == 1  # one client for every such step
    finally:
        await manager.aclose()

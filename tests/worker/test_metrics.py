"""A standalone worker, which has no API, serves its own metrics (WORKER_METRICS_PORT)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.services.container import Services
from tests.api.processes import free_port
from tests.callers import admin
from tests.polling import until
from tests.worker.conftest import Cluster
from tests.worker.test_processes import CHAIN, RUN_DEADLINE_SECONDS

FINISHED = (
    "flow_manager_runs_finished_total",
    frozenset({("flow", "Chain"), ("status", "completed")}),
)
RECORDED = ("flow_manager_steps_total", frozenset({("task", "Record"), ("status", "completed")}))


async def test_a_standalone_worker_serves_its_metrics(cluster: Cluster, services: Services) -> None:
    await services.flows.register(await admin(services), CHAIN)
    port = free_port()
    cluster.start_worker(settings={"WORKER_METRICS_PORT": str(port)})
    await services.runs.start(await admin(services), "Chain", {})
    cluster.open_gate("b")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    async def counted() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"http://127.0.0.1:{port}/metrics")
        except httpx.TransportError:  # not serving yet
            return False
        samples.clear()
        samples.update(
            ((sample.name, frozenset(sample.labels.items())), sample.value)
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
        )
        return samples.get(FINISHED) == 1

    await until(counted, deadline=RUN_DEADLINE_SECONDS, interval=0.1)
    assert samples[RECORDED] == 2

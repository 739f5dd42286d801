"""Fan-out across workers, between real worker processes (issue 15, item 4): the elements of a
shared fan-out are executed by every worker, and survive the kill -9 of a worker holding some.

The workers share fan-outs of at least SHARED_FAN_OUT_MIN (here 50) elements and claim
ELEMENT_BATCH (here 10) at a time; the tasks (`process_tasks.py`) record each execution with
their pid, so the test sees which worker ran each element.
"""

from __future__ import annotations

import signal
from collections import Counter

from app.domain.records import RunRecord
from app.domain.runs import RunStatus, TaskStatus
from app.services.container import Services
from tests.callers import admin
from tests.polling import until
from tests.worker.conftest import Cluster

STARTUP_DEADLINE_SECONDS = 20.0
RUN_DEADLINE_SECONDS = 40.0
SHARED = {"SHARED_FAN_OUT_MIN": "50", "ELEMENT_BATCH": "10"}

RECORDED = """
flow: Recorded
inputs: {items: array}
steps:
  - task: Record
    id: start
  - task: Record
    id: fan
    for_each: "${inputs.items}"
    max_concurrency: 1000
    inputs: {value: "${item}"}
  - task: Record
    id: join
    inputs: {value: "${sum(fan.value)}"}
outputs: {values: "${fan.value}", pids: "${fan.pid}", total: "${join.value}"}
"""

GATED = """
flow: Gated
inputs: {items: array}
steps:
  - task: Gate
    id: fan
    for_each: "${inputs.items}"
    max_concurrency: 1000
    inputs: {gate: g}
outputs: {pids: "${fan.pid}"}
"""


async def finished(services: Services, run_id: str) -> RunRecord:
    async def ended() -> bool:
        return (await services.runs.get(run_id, with_steps=False)).finished

    await until(ended, RUN_DEADLINE_SECONDS, interval=0.05)
    return await services.runs.get(run_id)


async def test_two_workers_both_execute_the_elements_of_one_run_each_once(
    cluster: Cluster, services: Services
) -> None:
    await services.flows.register(await admin(services), RECORDED)
    first = cluster.start_worker(settings=SHARED)
    second = cluster.start_worker(settings=SHARED)
    await first.logged("started", STARTUP_DEADLINE_SECONDS)
    await second.logged("started", STARTUP_DEADLINE_SECONDS)

    count = 300
    started = await services.runs.start(
        await admin(services), "Recorded", {"items": list(range(count))}
    )
    run = await finished(services, started.run.run_id)

    assert run.status is RunStatus.COMPLETED, run.error
    assert run.outputs is not None
    assert run.outputs["values"] == list(range(count))  # in element order
    assert run.outputs["total"] == sum(range(count))
    pids = Counter(run.outputs["pids"])
    assert set(pids) == {first.pid, second.pid}, pids  # both took part
    finishes = [
        event.idx
        for event in await cluster.events(run.run_id)
        if (event.step, event.event) == ("fan", "finished")
    ]
    assert sorted(finishes) == list(range(count))  # each element once
    elements = [step for step in run.steps if step.step_id == "fan"]
    assert {step.status for step in elements} == {TaskStatus.COMPLETED}


async def test_a_run_completes_with_every_element_once_after_a_worker_holding_some_is_killed(
    cluster: Cluster, services: Services
) -> None:
    await services.flows.register(await admin(services), GATED)
    first = cluster.start_worker(settings=SHARED)
    gated = await services.runs.start(await admin(services), "Gated", {"items": list(range(60))})
    run_id = gated.run.run_id

    async def holding() -> bool:  # the first worker runs a batch of elements, stuck at the gate
        events = await cluster.events(run_id)
        return sum(event.event == "started" for event in events) >= 10

    await until(holding, STARTUP_DEADLINE_SECONDS, interval=0.05)
    first.signal(signal.SIGKILL)
    assert await first.exit_code() == -signal.SIGKILL
    cluster.open_gate("g")
    second = cluster.start_worker(settings=SHARED)

    run = await finished(services, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.outputs == {"pids": [second.pid] * 60}
    events = await cluster.events(run_id)
    finished_by = Counter((event.idx, event.pid) for event in events if event.event == "finished")
    assert sorted(idx for idx, _ in finished_by) == list(range(60))  # every element once
    assert set(finished_by.values()) == {1}
    killed = {event.idx for event in events if event.pid == first.pid}
    assert killed  # it held some when it died: another worker took them over


async def test_a_worker_stopping_gives_its_unfinished_elements_to_another_at_once(
    cluster: Cluster, services: Services
) -> None:
    """Stopped (SIGTERM) past its grace, the worker releases the elements it holds: another
    takes them over well before their leases (here a minute) would have run out."""
    await services.flows.register(await admin(services), GATED)
    first = cluster.start_worker(lease_seconds=60, grace_seconds=0.2, settings=SHARED)
    gated = await services.runs.start(await admin(services), "Gated", {"items": list(range(60))})
    run_id = gated.run.run_id

    async def holding() -> bool:
        events = await cluster.events(run_id)
        return sum(event.event == "started" for event in events) >= 10

    await until(holding, STARTUP_DEADLINE_SECONDS, interval=0.05)
    first.signal(signal.SIGTERM)
    assert await first.exit_code() == 0
    cluster.open_gate("g")
    second = cluster.start_worker(lease_seconds=60, settings=SHARED)

    run = await finished(services, run_id)  # within RUN_DEADLINE_SECONDS, under the leases
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.outputs == {"pids": [second.pid] * 60}

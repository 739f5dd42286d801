"""Durable waits between real worker processes on one PostgreSQL: a run waiting in a sleep or
for a signal survives the kill -9 of the worker that ran it, holds no worker while it waits,
and another worker finishes it, on time, without running a finished step again."""

from __future__ import annotations

import signal

from app.domain.runs import RunStatus, TaskStatus
from app.services.container import Services
from tests.callers import admin
from tests.polling import until
from tests.worker.conftest import Cluster
from tests.worker.test_processes import finished, story

DEADLINE_SECONDS = 20.0

NAP = """
flow: Nap
inputs:
  - {name: seconds, type: number}
steps:
  - task: Record
    id: before
  - sleep: {id: nap, seconds: "${inputs.seconds}"}
  - task: Record
    id: after
outputs: {after_pid: "${after.pid}"}
"""

APPROVAL = """
flow: Approval
steps:
  - task: Record
    id: before
  - wait_for: {id: approval, signal: approve}
  - task: Record
    id: after
outputs: {approved: "${approval.payload.approved}", after_pid: "${after.pid}"}
"""


async def waiting(services: Services, run_id: str, step_id: str) -> None:
    async def step_waits() -> bool:
        run = await services.runs.get(run_id)
        return any(s.step_id == step_id and s.status is TaskStatus.WAITING for s in run.steps)

    await until(step_waits, DEADLINE_SECONDS, interval=0.05)


async def parked(cluster: Cluster, run_id: str) -> None:
    """The run gave up its lease: no worker holds it."""

    async def no_owner() -> bool:
        owner = await cluster.connection.fetchval(
            "SELECT lease_owner FROM flow_runs WHERE id = $1", run_id
        )
        return owner is None

    await until(no_owner, DEADLINE_SECONDS, interval=0.05)


async def test_a_sleeping_run_survives_the_kill_of_its_worker_and_wakes_on_time_elsewhere(
    cluster: Cluster, services: Services
) -> None:
    caller = await admin(services)
    await services.flows.register(caller, NAP)
    first = cluster.start_worker()
    run_id = (await services.runs.start(caller, "Nap", {"seconds": 3})).run.run_id
    await waiting(services, run_id, "nap")
    await parked(cluster, run_id)
    woke_at = await cluster.connection.fetchval(
        "SELECT available_at FROM task_runs WHERE run_id = $1 AND step_id = 'nap'", run_id
    )

    first.signal(signal.SIGKILL)
    assert await first.exit_code() == -signal.SIGKILL
    second = cluster.start_worker()

    run = await finished(services, run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.outputs == {"after_pid": second.pid}
    after = next(step for step in run.steps if step.step_id == "after")
    assert after.started_at is not None
    assert after.started_at >= woke_at  # not a moment before its time
    assert story(await cluster.events(run_id)) == [
        ("before", "finished", first.pid),  # never again
        ("after", "finished", second.pid),
    ]


async def test_a_run_waiting_for_a_signal_takes_it_after_the_kill_of_its_worker(
    cluster: Cluster, services: Services
) -> None:
    caller = await admin(services)
    await services.flows.register(caller, APPROVAL)
    first = cluster.start_worker()
    run_id = (await services.runs.start(caller, "Approval", {})).run.run_id
    await waiting(services, run_id, "approval")
    await parked(cluster, run_id)

    first.signal(signal.SIGKILL)
    assert await first.exit_code() == -signal.SIGKILL
    second = cluster.start_worker()
    await services.runs.signal(caller, run_id, "approve", {"approved": True})

    run = await finished(services, run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.outputs == {"approved": True, "after_pid": second.pid}
    assert story(await cluster.events(run_id)) == [
        ("before", "finished", first.pid),
        ("after", "finished", second.pid),
    ]


async def test_a_hundred_sleeping_runs_hold_no_worker_slot(
    cluster: Cluster, services: Services
) -> None:
    """Two slots, a hundred runs sleeping at once: they park, so each wakes on time."""
    caller = await admin(services)
    await services.flows.register(caller, NAP)
    cluster.start_worker(concurrency=2)
    run_ids = [
        (await services.runs.start(caller, "Nap", {"seconds": 2})).run.run_id for _ in range(100)
    ]

    async def all_finished() -> bool:
        unfinished = await cluster.connection.fetchval(
            "SELECT count(*) FROM flow_runs WHERE status IN ('queued', 'running')"
        )
        return bool(unfinished == 0)

    # In two slots, one after another, 100 runs of 2 s would take 100 s.
    await until(all_finished, DEADLINE_SECONDS, interval=0.1)
    completed = await cluster.connection.fetchval(
        "SELECT count(*) FROM flow_runs WHERE status = 'completed'"
    )
    assert completed == len(run_ids)


CHILD = """
flow: Child
steps:
  - task: Gate
    id: gated
    inputs: {gate: child}
outputs: {pid: "${gated.pid}"}
"""

PARENT = """
flow: Parent
steps:
  - task: Record
    id: before
  - flow: Child
    id: child
  - task: Record
    id: after
outputs: {child_pid: "${child.pid}", after_pid: "${after.pid}"}
"""


async def test_a_parent_and_its_child_survive_the_kill_of_their_worker(
    cluster: Cluster, services: Services
) -> None:
    caller = await admin(services)
    await services.flows.register(caller, CHILD)
    await services.flows.register(caller, PARENT)
    first = cluster.start_worker()
    parent_id = (await services.runs.start(caller, "Parent", {})).run.run_id
    await waiting(services, parent_id, "child")
    (child,) = (await services.runs.get(parent_id)).children
    await cluster.wait_for_event(child.run_id, "gated", "started", deadline=DEADLINE_SECONDS)

    first.signal(signal.SIGKILL)
    assert await first.exit_code() == -signal.SIGKILL
    cluster.open_gate("child")
    second = cluster.start_worker()

    run = await finished(services, parent_id)
    assert run.status is RunStatus.COMPLETED
    assert run.outputs == {"child_pid": second.pid, "after_pid": second.pid}
    assert [(c.run_id, c.status) for c in run.children] == [(child.run_id, RunStatus.COMPLETED)]
    assert story(await cluster.events(parent_id)) == [
        ("before", "finished", first.pid),
        ("after", "finished", second.pid),
    ]
    assert story(await cluster.events(child.run_id)) == [
        ("gated", "started", first.pid),  # the attempt the kill interrupted
        ("gated", "started", second.pid),
        ("gated", "finished", second.pid),
    ]

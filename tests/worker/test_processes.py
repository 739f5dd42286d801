"""Scale-out and crash safety, between real worker processes (issue 4).

What these tests prove only exists between processes, so they start `python -m app worker`
processes on a fresh PostgreSQL database and kill, stop and terminate them: a run survives the
death of its worker without running a finished step again, four workers share 500 runs without
running any task twice, SIGTERM drains (or hands the run over past its grace), and a worker that
stalled past its lease cannot record its late result. The tasks (`process_tasks.py`) record
every execution with their pid in the database, where the test process sees them.

They need PostgreSQL (skipped when it is absent, failed under CI: tests/servers.py) and Linux
(a stopped process is told by /proc), and take about 20 s on an idle 2-core machine (35 s on a
busy one), a third of it the 500 runs.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from app.domain.records import RunRecord
from app.domain.runs import RunStatus, TaskStatus
from app.services.container import Services
from tests.callers import admin
from tests.polling import until
from tests.worker.conftest import CONNECTIONS_PER_WORKER, Cluster, Event

RUN_DEADLINE_SECONDS = 20.0  # worker start-up (~1-2 s) plus an expired lease or two
STARTUP_DEADLINE_SECONDS = 20.0

CHAIN = """
flow: Chain
steps:
  - task: Record
    id: a
  - task: Gate
    id: b
    inputs: {gate: b}
  - task: Record
    id: c
outputs: {b_pid: "${b.pid}", c_pid: "${c.pid}"}
"""

STUBBORN_CHAIN = CHAIN.replace("flow: Chain", "flow: StubbornChain").replace(
    "task: Gate", "task: StubbornGate"
)

FAN_OUT = """
flow: FanOut
mode: dag
steps:
  - task: Record
    id: start
  - task: Record
    id: fan
    depends_on: [start]
    for_each: "${[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}"
    inputs: {value: "${item}"}
  - task: Record
    id: side
    depends_on: [start]
  - task: Record
    id: join
    depends_on: [side]
    inputs: {value: "${sum(fan.value)}"}
outputs: {total: "${join.value}"}
"""
FAN_OUT_TASKS = 13  # start, 10 elements, side, join
RUNS = 500


async def test_a_run_survives_the_kill_of_its_worker_in_the_middle_of_a_step(
    cluster: Cluster, services: Services
) -> None:
    await services.flows.register(await admin(services), CHAIN)
    first = cluster.start_worker()
    run_id = (await services.runs.start(await admin(services), "Chain", {})).run.run_id
    started = await cluster.wait_for_event(
        run_id, "b", "started", deadline=STARTUP_DEADLINE_SECONDS
    )
    assert started.pid == first.pid

    first.signal(signal.SIGKILL)
    assert await first.exit_code() == -signal.SIGKILL
    cluster.open_gate("b")
    second = cluster.start_worker()

    run = await finished(services, run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.outputs == {"b_pid": second.pid, "c_pid": second.pid}
    assert sorted((step.step_id, step.task_index, step.status) for step in run.steps) == [
        ("a", 0, TaskStatus.COMPLETED),
        ("b", 0, TaskStatus.COMPLETED),
        ("c", 0, TaskStatus.COMPLETED),
    ]
    assert story(await cluster.events(run_id)) == [
        ("a", "finished", first.pid),  # never again: it had finished
        ("b", "started", first.pid),  # the attempt the kill interrupted
        ("b", "started", second.pid),
        ("b", "finished", second.pid),
        ("c", "finished", second.pid),
    ]
    assert "its worker's lease expired; taking it over" in second.log_text()


@pytest.mark.timeout(180)
async def test_four_workers_share_500_runs_and_run_every_task_once(
    cluster: Cluster, services: Services
) -> None:
    free = await cluster.free_connections()
    assert free > 4 * CONNECTIONS_PER_WORKER, f"only {free} PostgreSQL connections are free"
    caller = await admin(services)
    await services.flows.register(caller, FAN_OUT)
    queueing = time.monotonic()
    for _ in range(0, RUNS, 25):
        await asyncio.gather(*(services.runs.start(caller, "FanOut", {}) for _ in range(25)))

    began = time.monotonic()
    print(f"\nqueued {RUNS} runs in {began - queueing:.1f} s")
    # Nothing crashes here: long leases, so that a busy machine never lets one expire.
    workers = [cluster.start_worker(concurrency=25, lease_seconds=30) for _ in range(4)]

    async def all_finished() -> bool:
        unfinished = await cluster.connection.fetchval(
            "SELECT count(*) FROM flow_runs WHERE status IN ('queued', 'running')"
        )
        return bool(unfinished == 0)

    await until(all_finished, deadline=120, interval=0.25)
    elapsed = time.monotonic() - began
    print(f"\n4 workers ran {RUNS} runs of {FAN_OUT_TASKS} tasks in {elapsed:.1f} s")

    db = cluster.connection
    statuses = await db.fetch("SELECT status, count(*) FROM flow_runs GROUP BY status")
    assert {row["status"]: row["count"] for row in statuses} == {"completed": RUNS}
    summed = await db.fetchval("""SELECT count(*) FROM flow_runs WHERE outputs = '{"total": 45}'""")
    assert summed == RUNS
    tasks = await db.fetchrow(
        """SELECT count(*) AS rows, count(DISTINCT (run_id, step_id, task_index)) AS tasks,
                  count(*) FILTER (WHERE status = 'completed') AS completed
           FROM task_runs"""
    )
    assert dict(tasks) == {
        "rows": RUNS * FAN_OUT_TASKS,
        "tasks": RUNS * FAN_OUT_TASKS,
        "completed": RUNS * FAN_OUT_TASKS,
    }
    effects = await db.fetchrow(
        """SELECT count(*) AS finishes, count(DISTINCT (run_id, step, idx)) AS tasks,
                  count(DISTINCT pid) AS processes
           FROM side_effects WHERE event = 'finished'"""
    )
    assert effects["finishes"] == RUNS * FAN_OUT_TASKS  # no task ran twice...
    assert effects["tasks"] == RUNS * FAN_OUT_TASKS  # ...and every one ran
    assert effects["processes"] > 1
    pids = {row["pid"] for row in await db.fetch("SELECT DISTINCT pid FROM side_effects")}
    assert pids <= {worker.pid for worker in workers}
    assert all(worker.running for worker in workers)
    assert not any("taking it over" in worker.log_text() for worker in workers)


async def test_sigterm_lets_the_run_in_flight_finish_then_exits(
    cluster: Cluster, services: Services
) -> None:
    await services.flows.register(await admin(services), CHAIN)
    worker = cluster.start_worker(grace_seconds=10)
    run_id = (await services.runs.start(await admin(services), "Chain", {})).run.run_id
    await cluster.wait_for_event(run_id, "b", "started", deadline=STARTUP_DEADLINE_SECONDS)

    worker.signal(signal.SIGTERM)
    await worker.logged("stopping: no more claims")
    late_id = (await services.runs.start(await admin(services), "Chain", {})).run.run_id
    assert worker.running  # b holds the gate shut: the worker waits for it
    cluster.open_gate("b")

    assert await worker.exit_code() == 0
    run = await services.runs.get(run_id)
    assert run.status is RunStatus.COMPLETED
    assert story(await cluster.events(run_id)) == [
        ("a", "finished", worker.pid),
        ("b", "started", worker.pid),
        ("b", "finished", worker.pid),
        ("c", "finished", worker.pid),
    ]
    late = await services.runs.get(late_id, with_steps=False)
    assert late.status is RunStatus.QUEUED  # queued after SIGTERM: left to other workers
    assert await cluster.connection.fetchval("SELECT count(*) FROM workers") == 0


async def test_sigterm_past_the_grace_releases_the_run_to_another_worker(
    cluster: Cluster, services: Services
) -> None:
    await services.flows.register(await admin(services), CHAIN)
    first = cluster.start_worker(grace_seconds=0.5)
    run_id = (await services.runs.start(await admin(services), "Chain", {})).run.run_id
    await cluster.wait_for_event(run_id, "b", "started", deadline=STARTUP_DEADLINE_SECONDS)

    first.signal(signal.SIGTERM)
    assert await first.exit_code(deadline=5) == 0
    released = await cluster.connection.fetchrow(
        "SELECT status, lease_owner FROM flow_runs WHERE id = $1", run_id
    )
    assert dict(released) == {"status": "running", "lease_owner": None}
    assert "released 1 unfinished run(s)" in first.log_text()
    assert await cluster.connection.fetchval("SELECT count(*) FROM workers") == 0

    cluster.open_gate("b")
    second = cluster.start_worker()
    run = await finished(services, run_id)

    assert run.status is RunStatus.COMPLETED
    assert run.outputs == {"b_pid": second.pid, "c_pid": second.pid}
    assert story(await cluster.events(run_id)) == [
        ("a", "finished", first.pid),
        ("b", "started", first.pid),  # stopped by the shutdown, recorded nothing
        ("b", "started", second.pid),
        ("b", "finished", second.pid),
        ("c", "finished", second.pid),
    ]


@pytest.mark.parametrize("resumed", ["while_the_step_runs_elsewhere", "after_the_run_ended"])
async def test_a_stalled_worker_cannot_record_its_late_result(
    cluster: Cluster, services: Services, resumed: str
) -> None:
    """Resumed while the run is another worker's, only the lease refuses the stalled
    worker's write; once the run has ended, its end does too."""
    await services.flows.register(await admin(services), STUBBORN_CHAIN)
    stalled = cluster.start_worker(lease_seconds=2)
    run_id = (await services.runs.start(await admin(services), "StubbornChain", {})).run.run_id
    await cluster.wait_for_event(
        run_id, "b", "started", pid=stalled.pid, deadline=STARTUP_DEADLINE_SECONDS
    )

    await cluster.freeze(stalled)
    other = cluster.start_worker(lease_seconds=2)
    await cluster.wait_for_event(
        run_id, "b", "started", pid=other.pid, deadline=RUN_DEADLINE_SECONDS
    )
    if resumed == "after_the_run_ended":
        cluster.open_gate("b")
        before = await finished(services, run_id)
    else:
        cluster.open_gate("b", pid=stalled.pid)
        before = await step_running(services, run_id, "b")  # its start recorded by `other`

    stalled.signal(signal.SIGCONT)
    # Its attempt of b finishes (its gate is open) and it tries to record the result.
    await cluster.wait_for_event(run_id, "b", "finished", pid=stalled.pid)
    await stalled.logged(f"run {run_id}: lease lost")
    assert await services.runs.get(run_id) == before

    cluster.open_gate("b")
    run = await finished(services, run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.outputs == {"b_pid": other.pid, "c_pid": other.pid}
    (b,) = (step for step in run.steps if step.step_id == "b")
    assert b.outputs == {"pid": other.pid}
    assert sorted(story(await cluster.events(run_id))) == sorted(
        [
            ("a", "finished", stalled.pid),
            ("b", "started", stalled.pid),
            ("b", "finished", stalled.pid),  # refused
            ("b", "started", other.pid),
            ("b", "finished", other.pid),
            ("c", "finished", other.pid),
        ]
    )
    stalled.signal(signal.SIGTERM)
    assert await stalled.exit_code() == 0


async def finished(services: Services, run_id: str) -> RunRecord:
    """The run, once it finished."""

    async def ended() -> bool:
        return (await services.runs.get(run_id, with_steps=False)).finished

    await until(ended, RUN_DEADLINE_SECONDS, interval=0.05)
    return await services.runs.get(run_id)


async def step_running(services: Services, run_id: str, step_id: str) -> RunRecord:
    """The run, once its step shows running."""
    found: list[RunRecord] = []

    async def running() -> bool:
        found[:] = [await services.runs.get(run_id)]
        return any(
            step.step_id == step_id and step.status is TaskStatus.RUNNING for step in found[0].steps
        )

    await until(running, RUN_DEADLINE_SECONDS, interval=0.05)
    return found[0]


def story(events: list[Event]) -> list[tuple[str, str, int]]:
    """What happened to a run, in order: (step, event, pid)."""
    return [(event.step, event.event, event.pid) for event in events]

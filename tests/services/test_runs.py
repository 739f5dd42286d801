"""The run service on each store: execute, retry, cancel, idempotency, interrupted runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.domain.records import RunRecord
from app.domain.runs import RunStatus, TaskStatus
from app.errors import InputValidationError, RunStateError, UnknownFlowError
from app.services.container import Services
from app.store.queries import runs
from app.worker.claim_loop import ClaimLoop
from tests.callers import admin
from tests.polling import until
from tests.services import sample_tasks
from tests.services.conftest import opened_services

CHAIN = """
flow: Chain
inputs: {n: integer}
steps:
  - task: Count
    id: first
    inputs: {name: first}
  - task: FailUntilAllowed
    id: second
    inputs: {name: second}
  - set: {id: third, values: {total: "${first.calls + second.calls + inputs.n}"}}
outputs: {total: "${third.total}"}
"""

GATED = """
flow: Gated
steps:
  - task: WaitForGate
    id: wait
    inputs: {name: gate}
  - task: Count
    id: after
    inputs: {name: after}
"""


async def test_execute_persists_the_run_and_every_step(services: Services) -> None:
    await services.flows.register(await admin(services), CHAIN)

    started = await services.runs.execute(await admin(services), "Chain", {"n": "5"}, wait=10)

    run = await services.runs.get(started.run.run_id)
    assert started.created
    assert run.status is RunStatus.COMPLETED
    assert run.inputs == {"n": 5}
    assert run.outputs == {"total": 7}
    assert run.remaining_steps == 0
    assert [(step.step_id, step.status, step.attempts) for step in run.steps] == [
        ("first", TaskStatus.COMPLETED, 1),
        ("second", TaskStatus.COMPLETED, 1),
        ("third", TaskStatus.COMPLETED, 1),
    ]
    assert all(step.finished_at and step.started_at for step in run.steps)


def versioned(version: int) -> str:
    """A flow whose first step has an effect (it counts its calls) and whose outputs say
    which version ran."""
    return f"""
flow: Versioned
steps:
  - task: Count
    id: counted
    inputs: {{name: counted}}
  - set: {{id: version, values: {{number: {version}}}}}
outputs: {{version: "${{version.number}}", calls: "${{counted.calls}}"}}
"""


async def test_execute_runs_the_version_another_process_registered_meanwhile(
    migrated_store_url: str,
) -> None:
    async with (
        opened_services(migrated_store_url) as here,
        opened_services(migrated_store_url) as elsewhere,
    ):
        caller = await admin(here)
        await here.flows.register(caller, versioned(1))
        first = await here.runs.execute(caller, "Versioned", {}, wait=10)  # version 1 known
        await elsewhere.flows.register(await admin(elsewhere), versioned(2))

        second = await here.runs.execute(caller, "Versioned", {}, wait=10)

        assert first.run.outputs == {"version": 1, "calls": 1}
        # The run this process created for version 1 was refused at its commit, before its
        # first step ran; the run of version 2 is the only other one.
        assert (second.run.version, second.run.outputs) == (2, {"version": 2, "calls": 2})
        listed = (await here.runs.list_runs(caller)).items
        assert [(run.version, run.status) for run in listed] == [
            (2, RunStatus.COMPLETED),
            (1, RunStatus.COMPLETED),
        ]


async def test_a_burst_of_first_runs_looks_the_flows_version_up_once(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller = await admin(services)
    await services.flows.register(caller, CHAIN)
    lookups = 0
    locate = services.run_store.locate

    async def counted(name: str, number: int | None) -> tuple[int, int]:
        nonlocal lookups
        lookups += 1
        return await locate(name, number)

    monkeypatch.setattr(services.run_store, "locate", counted)

    started = await asyncio.gather(
        *(services.runs.start(caller, "Chain", {"n": n}) for n in range(20))
    )

    assert len({one.run.run_id for one in started}) == 20
    assert lookups == 1


async def test_bad_inputs_create_no_run(services: Services) -> None:
    await services.flows.register(await admin(services), CHAIN)

    with pytest.raises(InputValidationError):
        await services.runs.execute(await admin(services), "Chain", {"n": "five"})
    with pytest.raises(UnknownFlowError):
        await services.runs.execute(await admin(services), "Nope", {})

    assert (await services.runs.list_runs(await admin(services))).items == ()


async def test_retry_reruns_only_unfinished_steps(services: Services) -> None:
    await services.flows.register(await admin(services), CHAIN)
    sample_tasks.failures_left["second"] = 1

    failed = await services.runs.get(
        (await services.runs.execute(await admin(services), "Chain", {"n": 0}, wait=10)).run.run_id
    )
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert failed.error.step == "second"

    await services.runs.retry(await admin(services), failed.run_id)
    retried = await wait_until_finished(services, failed.run_id)

    assert retried.status is RunStatus.COMPLETED
    assert retried.outputs == {"total": 3}  # first ran once (1), second twice (2)
    assert sample_tasks.calls["first"] == 1
    assert sample_tasks.calls["second"] == 2
    with pytest.raises(RunStateError):
        await services.runs.retry(await admin(services), failed.run_id)


async def test_cancel_stops_a_running_run(services: Services) -> None:
    await services.flows.register(await admin(services), GATED)

    started = await services.runs.execute(await admin(services), "Gated", {}, wait=0)
    assert started.run.status is RunStatus.RUNNING
    await until(lambda: sample_tasks.calls["gate"] == 1)  # inside the step, waiting

    cancelled = await services.runs.cancel(await admin(services), started.run.run_id)

    assert cancelled.status is RunStatus.CANCELLED
    assert {step.status for step in cancelled.steps} == {TaskStatus.CANCELLED}
    assert sample_tasks.calls["after"] == 0
    with pytest.raises(RunStateError):
        await services.runs.cancel(await admin(services), started.run.run_id)


async def test_same_idempotency_key_gives_one_run_even_at_the_same_instant(
    services: Services,
) -> None:
    caller = await admin(services)
    await services.flows.register(caller, CHAIN)

    results = await asyncio.gather(
        *(services.runs.start(caller, "Chain", {"n": 1}, idempotency_key="key-1") for _ in range(5))
    )

    assert len({result.run.run_id for result in results}) == 1
    assert sum(result.created for result in results) == 1
    assert len((await services.runs.list_runs(await admin(services))).items) == 1


async def test_a_run_released_at_shutdown_is_taken_over_and_resumes(services: Services) -> None:
    await services.flows.register(await admin(services), GATED)
    started = await services.runs.execute(await admin(services), "Gated", {}, wait=0)
    await until(lambda: sample_tasks.calls["gate"] == 1)

    await services.runner.shutdown(grace=0)  # the process stops while the gate is shut

    interrupted = await services.runs.get(started.run.run_id)
    assert interrupted.status is RunStatus.RUNNING  # released, not ended: nothing is recorded
    assert interrupted.steps[0].status in (TaskStatus.QUEUED, TaskStatus.RUNNING)
    sample_tasks.gates["gate"].set()
    run_id = started.run.run_id

    worker = ClaimLoop(services.runner, concurrency=2, poll_interval=0.05)
    assert await worker.claim() == 1
    resumed = await wait_until_finished(services, run_id)

    assert resumed.status is RunStatus.COMPLETED
    assert sample_tasks.calls["gate"] == 2  # the interrupted attempt ran again
    assert sample_tasks.calls["after"] == 1


async def test_runs_are_listed_newest_first_with_a_cursor(services: Services) -> None:
    await services.flows.register(await admin(services), CHAIN)
    ids = [
        (await services.runs.execute(await admin(services), "Chain", {"n": n}, wait=10)).run.run_id
        for n in range(5)
    ]

    first = await services.runs.list_runs(await admin(services), limit=2)
    second = await services.runs.list_runs(await admin(services), limit=2, cursor=first.next_cursor)
    third = await services.runs.list_runs(await admin(services), limit=2, cursor=second.next_cursor)

    listed = [run.run_id for page in (first, second, third) for run in page.items]
    assert listed == list(reversed(ids))
    assert third.next_cursor is None


async def test_a_queued_run_shows_every_step_pending(services: Services) -> None:
    await services.flows.register(await admin(services), CHAIN)

    started = await services.runs.start(await admin(services), "Chain", {"n": 1})
    run = await services.runs.get(started.run.run_id)

    assert [(s.step_id, s.status) for s in run.steps] == [
        ("first", TaskStatus.PENDING),
        ("second", TaskStatus.PENDING),
        ("third", TaskStatus.PENDING),
    ]


async def wait_until_finished(services: Services, run_id: str, deadline: float = 10) -> RunRecord:
    async def finished() -> bool:
        return (await services.runs.get(run_id)).finished

    await until(finished, deadline)
    return await services.runs.get(run_id)


async def test_a_run_cancelled_elsewhere_is_not_ended_again_by_its_executor(
    services: Services,
) -> None:
    await services.flows.register(await admin(services), GATED)
    started = await services.runs.execute(await admin(services), "Gated", {}, wait=0)
    run_id = started.run.run_id
    await until(lambda: sample_tasks.calls["gate"] == 1)
    async with services.store.engine.begin() as connection:  # as another process's cancel does
        await runs.change_status(
            connection, run_id, RunStatus.CANCELLED, only_from=[RunStatus.RUNNING]
        )

    sample_tasks.gates["gate"].set()
    await until(lambda: run_id not in services.runner.in_flight)

    assert (await services.runs.get(run_id)).status is RunStatus.CANCELLED


FAN_OUT = """
flow: FanOut
inputs: {items: array}
steps:
  - set: {id: each, for_each: "${inputs.items}", values: {v: "${item * 10}"}}
  - set: {id: total, values: {sum: "${sum(each.v)}"}}
outputs: {sum: "${total.sum}", each: "${each.v}"}
"""


async def test_a_fan_out_persists_one_task_per_element(services: Services) -> None:
    await services.flows.register(await admin(services), FAN_OUT)

    started = await services.runs.execute(
        await admin(services), "FanOut", {"items": [1, 2, 3]}, wait=10
    )

    run = await services.runs.get(started.run.run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.outputs == {"sum": 60, "each": [10, 20, 30]}
    assert [(s.step_id, s.task_index, s.status, s.outputs) for s in run.steps] == [
        ("each", 0, TaskStatus.COMPLETED, {"v": 10}),
        ("total", 0, TaskStatus.COMPLETED, {"sum": 60}),
        ("each", 1, TaskStatus.COMPLETED, {"v": 20}),
        ("each", 2, TaskStatus.COMPLETED, {"v": 30}),
    ]


OPTIONAL = """
flow: Optional
inputs:
  - {name: settings, type: object}
  - {name: limit, type: integer}
  - {name: label, type: string, default: none}
steps:
  - set: {id: echo, values: {settings: "${inputs.settings}", limit: "${inputs.limit}"}}
outputs: {settings: "${echo.settings}", limit: "${echo.limit}", label: "${inputs.label}"}
"""


async def test_optional_inputs_left_out_are_null_for_the_worker_as_at_the_door(
    services: Services,
) -> None:
    caller = await admin(services)
    await services.flows.register(caller, OPTIONAL)

    executed = await services.runs.execute(caller, "Optional", {}, wait=10)
    queued = await services.runs.start(caller, "Optional", {"settings": None})
    assert await services.runner.claim(5) == 1  # the worker reads the stored inputs back
    claimed = await wait_until_finished(services, queued.run.run_id)

    expected = {"settings": None, "limit": None, "label": "none"}
    for run in (executed.run, claimed):
        assert run.status is RunStatus.COMPLETED, run.error
        assert run.outputs == expected
        assert run.inputs == {"settings": None, "limit": None, "label": "none"}


async def test_a_run_failing_for_a_non_retryable_reason_fails_once_and_is_not_claimed_again(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller = await admin(services)
    await services.flows.register(caller, CHAIN)
    run_id = (await services.runs.start(caller, "Chain", {"n": 1})).run.run_id
    executions = []

    async def refused(*args: Any, **kwargs: Any) -> Any:
        executions.append(args)  # as when the store refuses what the run would write
        raise ValueError("value out of range for the column")

    monkeypatch.setattr(services.executor, "run_checked", refused)

    assert await services.runner.claim(5) == 1
    failed = await wait_until_finished(services, run_id)
    assert await services.runner.claim(5) == 0

    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert (failed.error.step, failed.error.type) == (None, "ValueError")
    assert failed.error.message == "value out of range for the column"
    assert len(executions) == 1
    assert all(step.status is TaskStatus.CANCELLED for step in failed.steps)

"""Shared fan-outs in one process: a fan-out of at least SHARED_FAN_OUT_MIN elements is handed
to the workers (here, this process's claim loop), its run parks, and the last element's end
wakes it to collect the outputs in element order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.domain.elements import ElementWork
from app.domain.records import RunRecord
from app.domain.runs import RunStatus, TaskStatus
from app.services.container import Services
from app.worker.claim_loop import ClaimLoop
from tests.callers import admin
from tests.polling import until
from tests.services import sample_tasks
from tests.services.conftest import opened_services

FAN_OUT = """
flow: Shared
inputs: {items: array, offset: {type: integer, default: 0}}
steps:
  - set: {id: base, values: {add: "${inputs.offset}"}}
  - task: Values
    id: each
    for_each: "${inputs.items}"
    max_concurrency: 50
    inputs: {values: {v: "${item * 10 + base.add}", at: "${index}"}}
  - set: {id: total, values: {sum: "${sum(each.v)}"}}
outputs: {sum: "${total.sum}", each: "${each.v}", at: "${each.at}"}
"""

FAILING = """
flow: SharedFailing
inputs: {items: array}
steps:
  - task: FailUntilAllowed
    id: each
    for_each: "${inputs.items}"
    inputs: {name: "${'bad' if item == 7 else 'good'}"}
  - set: {id: after, values: {ok: true}}
"""

GATED = """
flow: SharedGated
inputs: {items: array}
steps:
  - task: WaitForGate
    id: each
    for_each: "${inputs.items}"
    max_concurrency: 5
    inputs: {name: gate}
"""


@pytest.fixture
async def services(migrated_store_url: str) -> AsyncIterator[Services]:
    async with opened_services(
        migrated_store_url, shared_fan_out_min=20, element_batch=40
    ) as opened:
        yield opened


@pytest.fixture(autouse=True)
async def worker(services: Services) -> AsyncIterator[ClaimLoop]:
    """The process's claim loop: it claims runs, and elements of shared fan-outs."""
    loop = ClaimLoop(services.runner, concurrency=5, poll_interval=0.05)
    await loop.start()
    yield loop
    await loop.stop()


async def finished(services: Services, run_id: str, deadline: float = 30) -> RunRecord:
    async def ended() -> bool:
        return (await services.runs.get(run_id)).finished

    await until(ended, deadline)
    return await services.runs.get(run_id)


async def test_a_large_fan_out_is_run_by_the_workers_and_collected_in_element_order(
    services: Services,
) -> None:
    await services.flows.register(await admin(services), FAN_OUT)
    items = list(range(300))

    started = await services.runs.start(
        await admin(services), "Shared", {"items": items, "offset": 1}
    )
    run = await finished(services, started.run.run_id)

    assert run.status is RunStatus.COMPLETED, run.error
    assert run.outputs == {
        "sum": sum(i * 10 + 1 for i in items),
        "each": [i * 10 + 1 for i in items],
        "at": items,
    }
    elements = sorted((s.task_index, s.status, s.outputs) for s in run.steps if s.step_id == "each")
    assert elements == [(i, TaskStatus.COMPLETED, {"v": i * 10 + 1, "at": i}) for i in items]
    assert [s.status for s in run.steps if s.step_id == "total"] == [TaskStatus.COMPLETED]
    assert run.remaining_steps == 0


PURE_FAN_OUT = """
flow: PureFanOut
inputs: {items: array}
steps:
  - set: {id: each, for_each: "${inputs.items}", values: {v: "${item * 2}"}}
outputs: {each: "${each.v}"}
"""


async def test_a_large_fan_out_of_a_pure_task_stays_in_its_run_process(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its elements cost less than their claims would: they run where the run runs."""
    shared: set[str] = set()  # the runs whose elements some worker claimed
    claim_elements = services.run_store.claim_elements

    async def recording_claims(*arguments: Any) -> list[ElementWork]:
        works = await claim_elements(*arguments)
        shared.update(work.run_id for work in works)
        return works

    monkeypatch.setattr(services.run_store, "claim_elements", recording_claims)
    await services.flows.register(await admin(services), PURE_FAN_OUT)
    await services.flows.register(await admin(services), FAN_OUT)
    items = list(range(100))  # SHARED_FAN_OUT_MIN is 20 here

    pure = await services.runs.start(await admin(services), "PureFanOut", {"items": items})
    effects = await services.runs.start(await admin(services), "Shared", {"items": items})
    pure_run = await finished(services, pure.run.run_id)
    await finished(services, effects.run.run_id)

    assert pure_run.outputs == {"each": [i * 2 for i in items]}
    assert shared == {effects.run.run_id}


async def test_a_small_fan_out_stays_in_its_run_process(services: Services) -> None:
    await services.flows.register(await admin(services), FAN_OUT)

    started = await services.runs.execute(await admin(services), "Shared", {"items": [1, 2]})

    assert started.run.status is RunStatus.COMPLETED
    assert started.run.outputs == {"sum": 30, "each": [10, 20], "at": [0, 1]}


async def test_a_failing_element_fails_the_step_and_the_run_with_its_error(
    services: Services,
) -> None:
    await services.flows.register(await admin(services), FAILING)
    sample_tasks.failures_left["bad"] = 1_000

    started = await services.runs.start(
        await admin(services), "SharedFailing", {"items": list(range(100))}
    )
    run = await finished(services, started.run.run_id)

    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert (run.error.step, run.error.message.split(":")[0]) == ("each", "element 7")
    statuses = {s.task_index: s.status for s in run.steps if s.step_id == "each"}
    assert statuses[7] is TaskStatus.FAILED
    assert set(statuses.values()) <= {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
    }
    assert [s.status for s in run.steps if s.step_id == "after"] == [TaskStatus.CANCELLED]


async def test_cancelling_the_run_cancels_its_pending_elements(services: Services) -> None:
    await services.flows.register(await admin(services), GATED)

    started = await services.runs.start(
        await admin(services), "SharedGated", {"items": list(range(50))}
    )
    run_id = started.run.run_id
    await until(lambda: sample_tasks.calls["gate"] == 5)  # max_concurrency: 5 at once

    await services.runs.cancel(await admin(services), run_id)
    sample_tasks.gates["gate"].set()

    run = await finished(services, run_id)
    assert run.status is RunStatus.CANCELLED
    statuses = [s.status for s in run.steps if s.step_id == "each"]
    assert statuses == [TaskStatus.CANCELLED] * 50
    await until(lambda: not services.runner.elements.held)
    assert sample_tasks.calls["gate"] == 5  # none was claimed after the cancel


async def test_execute_answers_once_its_shared_fan_out_ended(services: Services) -> None:
    await services.flows.register(await admin(services), FAN_OUT)

    started = await services.runs.execute(
        await admin(services), "Shared", {"items": list(range(100))}, wait=30
    )

    assert started.run.status is RunStatus.COMPLETED
    assert started.run.outputs is not None
    assert started.run.outputs["each"] == [i * 10 for i in range(100)]


BESIDE = """
flow: Beside
mode: dag
inputs: {items: array}
steps:
  - task: Values
    id: each
    for_each: "${inputs.items}"
    inputs: {values: {v: "${item}"}}
  - task: WaitForGate
    id: slow
    inputs: {name: slow}
  - set: {id: join, depends_on: [each, slow], values: {n: "${len(each.v)}"}}
outputs: {n: "${join.n}", opened: "${slow.opened}"}
"""


async def test_a_shared_fan_out_that_ends_while_other_steps_run_is_collected_after_them(
    services: Services,
) -> None:
    await services.flows.register(await admin(services), BESIDE)
    started = await services.runs.start(await admin(services), "Beside", {"items": list(range(40))})
    run_id = started.run.run_id

    async def elements_done() -> bool:
        run = await services.runs.get(run_id)
        each = [s.status for s in run.steps if s.step_id == "each"]
        return each == [TaskStatus.COMPLETED] * 40

    await until(elements_done, 30)
    sample_tasks.gates.setdefault("slow", asyncio.Event()).set()

    run = await finished(services, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.outputs == {"n": 40, "opened": True}


COUNTED_BESIDE = """
flow: CountedBeside
mode: dag
inputs: {items: array}
steps:
  - task: Count
    id: each
    for_each: "${inputs.items}"
    inputs: {name: element}
  - task: WaitForGate
    id: slow
    inputs: {name: slow}
  - set: {id: join, depends_on: [each, slow], values: {n: "${len(each.calls)}"}}
outputs: {n: "${join.n}"}
"""


async def test_a_run_taken_over_while_its_fan_out_is_shared_collects_it_without_rerunning_it(
    services: Services, worker: ClaimLoop
) -> None:
    await services.flows.register(await admin(services), COUNTED_BESIDE)
    started = await services.runs.start(
        await admin(services), "CountedBeside", {"items": list(range(30))}
    )
    run_id = started.run.run_id
    await until(lambda: sample_tasks.calls["element"] == 30 and sample_tasks.calls["slow"] == 1)
    await until(lambda: not services.runner.elements.held)  # their ends recorded

    await worker.stop()
    await services.runner.shutdown(grace=0)  # the run's process stops, its lease released
    await worker.start()  # another process, as it were
    await until(lambda: sample_tasks.calls["slow"] == 2, 30)  # taken over: `slow` runs again
    sample_tasks.gates.setdefault("slow", asyncio.Event()).set()

    run = await finished(services, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.outputs == {"n": 30}
    assert sample_tasks.calls["element"] == 30  # the fan-out was not run again

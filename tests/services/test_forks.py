"""Forking a run from a step, and comparing two runs, on each store."""

from __future__ import annotations

import pytest

from app.domain.clock import utcnow
from app.domain.records import RunRecord
from app.domain.runs import RunStatus, TaskStatus
from app.errors import RequestError, RunStateError, UnknownRunError
from app.services.container import Services
from app.services.runner import Launch
from tests.callers import admin
from tests.polling import until
from tests.services import sample_tasks

# `a` and `b` are independent; `total` depends on both.
PAIR = """
flow: Pair
inputs: {n: integer}
steps:
  - task: Count
    id: a
    inputs: {name: a}
  - task: Count
    id: b
    inputs: {name: b}
  - set: {id: total, values: {sum: "${a.calls + b.calls + inputs.n}"}}
outputs: {sum: "${total.sum}"}
"""

GATED = """
flow: Gated
steps:
  - task: WaitForGate
    id: wait
    inputs: {name: gate}
"""


async def finished(services: Services, run_id: str) -> RunRecord:
    async def ended() -> bool:
        return (await services.runs.get(run_id, with_steps=False)).finished

    await until(ended)
    return await services.runs.get(run_id)


async def source_run(services: Services) -> RunRecord:
    caller = await admin(services)
    await services.flows.register(caller, PAIR)
    started = await services.runs.execute(caller, "Pair", {"n": 0}, wait=10)
    run = await services.runs.get(started.run.run_id)
    assert run.outputs == {"sum": 2}
    return run


def steps(run: RunRecord) -> dict[str, tuple[TaskStatus, int, object]]:
    return {step.step_id: (step.status, step.attempts, step.outputs) for step in run.steps}


async def test_a_fork_keeps_the_steps_before_its_step_without_running_them(
    services: Services,
) -> None:
    source = await source_run(services)

    started = await services.runs.fork(await admin(services), source.run_id, "b")
    fork = await finished(services, started.run.run_id)

    assert started.created
    assert fork.run_id != source.run_id
    assert fork.forked_from == source.run_id
    assert fork.status is RunStatus.COMPLETED
    assert sample_tasks.calls["a"] == 1  # kept, not run again
    assert sample_tasks.calls["b"] == 2  # run again
    assert fork.outputs == {"sum": 3}
    assert steps(fork)["a"] == steps(source)["a"]
    assert fork.inputs == source.inputs
    assert (await services.runs.get(source.run_id)).forked_from is None


async def test_patched_outputs_flow_into_later_steps_and_inputs_are_replaced(
    services: Services,
) -> None:
    source = await source_run(services)

    started = await services.runs.fork(
        await admin(services),
        source.run_id,
        "total",
        inputs={"n": "100"},
        outputs={"a": {"calls": 10}},
    )
    fork = await finished(services, started.run.run_id)

    assert fork.status is RunStatus.COMPLETED
    assert fork.inputs == {"n": 100}  # validated like any run's
    assert fork.outputs == {"sum": 111}  # a patched (10), b kept (1), n replaced (100)
    assert (sample_tasks.calls["a"], sample_tasks.calls["b"]) == (1, 1)
    assert steps(fork)["a"][2] == {"calls": 10}


async def test_a_fork_refuses_what_it_cannot_do(services: Services) -> None:
    caller = await admin(services)
    source = await source_run(services)

    with pytest.raises(RequestError) as unknown_step:
        await services.runs.fork(caller, source.run_id, "nope")
    assert unknown_step.value.loc == ("body", "from_step")
    with pytest.raises(RequestError) as not_kept:
        await services.runs.fork(caller, source.run_id, "b", outputs={"total": {"sum": 1}})
    assert not_kept.value.loc == ("body", "outputs", "total")
    with pytest.raises(UnknownRunError):
        await services.runs.fork(caller, "00000000-0000-0000-0000-000000000000", "a")

    await services.flows.register(caller, GATED)
    running = await services.runs.execute(caller, "Gated", {}, wait=0)
    await until(lambda: sample_tasks.calls["gate"] == 1)
    with pytest.raises(RunStateError):
        await services.runs.fork(caller, running.run.run_id, "wait")
    sample_tasks.gates["gate"].set()
    await finished(services, running.run.run_id)

    listed = await services.runs.list_runs(caller, flow="Pair")
    assert [run.run_id for run in listed.items] == [source.run_id]  # no run was created


async def test_diff_shows_what_differs_step_by_step(services: Services) -> None:
    caller = await admin(services)
    source = await source_run(services)
    started = await services.runs.fork(caller, source.run_id, "b", inputs={"n": 5})
    fork = await finished(services, started.run.run_id)

    diff = await services.runs.diff(caller, source.run_id, fork.run_id)

    assert not diff.same
    assert diff.inputs is not None
    assert (diff.inputs.a, diff.inputs.b) == ({"n": 0}, {"n": 5})
    by_step = {step.step_id: step for step in diff.steps}
    assert by_step["a"].same
    assert by_step["b"].differences["outputs"].a == {"calls": 1}
    assert by_step["b"].differences["outputs"].b == {"calls": 2}
    assert set(by_step["b"].differences) == {"outputs"}
    assert by_step["total"].differences["outputs"].b == {"sum": 8}
    assert (await services.runs.diff(caller, source.run_id, source.run_id)).same


async def test_a_fork_whose_process_stopped_before_it_ran_is_taken_over_with_its_kept_steps(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = await source_run(services)
    launched: list[Launch] = []
    monkeypatch.setattr(services.runner, "launch", launched.append)  # as if killed right after

    started = await services.runs.fork(await admin(services), source.run_id, "b")
    await services.runner.repository.release([started.run.run_id], utcnow())
    monkeypatch.undo()
    assert await services.runner.claim(5) == 1  # any worker takes it over
    fork = await finished(services, started.run.run_id)

    assert len(launched) == 1
    assert (fork.status, fork.outputs, fork.forked_from) == (
        RunStatus.COMPLETED,
        {"sum": 3},
        source.run_id,
    )
    assert (sample_tasks.calls["a"], sample_tasks.calls["b"]) == (1, 2)

"""Shared fan-outs on every SQL run store (the in-memory stores decline to share: their
fan-outs run in process): claiming elements (skip locked, in batches, within the fan-out's
`max_concurrency`, each under a lease of its own), ends recorded only under a held lease, and
the end that leaves no element — or the first failure — waking the parked run exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from app.domain.clock import utcnow
from app.domain.elements import ElementFinish, ElementWork, SharedFanOut
from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus
from app.engine.store import NewRun
from tests.databases import STORE_DATABASES
from tests.store.contract.conftest import LEASE, RunPorts, SqlStores, new_run, sql_stores


@pytest.fixture(params=STORE_DATABASES)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStores]:
    async with sql_stores(request.param, tmp_path) as opened:
        yield opened


async def shared_run(stores: SqlStores, count: int = 10, max_concurrency: int = 100) -> RunPorts:
    """Run "r1" under w1's lease, its step `fan` shared into `count` elements (items 0..)."""
    definition_id = await stores.flow("f", await stores.user("u1"))
    owner = stores.of("w1")
    await owner.create(new_run("r1", definition_id, steps=("fan", "after"), owner="w1"))
    await owner.run_started(NewRun("r1", "f", {}, ["fan", "after"], ["fan"], utcnow()))
    scope = {"inputs": {"n": 1}, "steps": {}}
    fan_out = SharedFanOut("fan", list(range(count)), scope, None, max_concurrency)
    assert await owner.fan_out_shared("r1", fan_out) is True
    return owner


def ends(work: ElementWork, status: TaskStatus = TaskStatus.COMPLETED) -> list[ElementFinish]:
    return [
        ElementFinish(
            work.run_id,
            work.step_id,
            element.task_id,
            element.index,
            status,
            {"v": element.item * 10} if status is TaskStatus.COMPLETED else None,
            None if status is TaskStatus.COMPLETED else RunError("fan", "TaskError", "no"),
            1,
            utcnow(),
        )
        for element in work.elements
    ]


async def element_statuses(store: RunPorts, count: int) -> list[TaskStatus]:
    statuses = []
    for index in range(count):
        task = await store.task("r1", "fan", index)
        assert task is not None
        statuses.append(task.status)
    return statuses


def indexes(works: list[ElementWork]) -> list[int]:
    return sorted(element.index for work in works for element in work.elements)


async def test_elements_are_claimed_in_batches_by_any_worker_each_once(
    stores: SqlStores,
) -> None:
    await shared_run(stores, count=10)

    first = await stores.of("w2").claim_elements(utcnow(), LEASE, 4)
    second = await stores.of("w3").claim_elements(utcnow(), LEASE, 100)

    assert len(indexes(first)) == 4
    assert sorted(indexes(first) + indexes(second)) == list(range(10))
    (work,) = first
    assert (work.run_id, work.step_id, work.scope) == (
        "r1",
        "fan",
        {"inputs": {"n": 1}, "steps": {}},
    )
    assert all(element.item == element.index for element in work.elements)
    assert await stores.of("w4").claim_elements(utcnow(), LEASE, 100) == []
    element = await stores.of("w2").task("r1", "fan", work.elements[0].index)
    assert element is not None
    assert element.status is TaskStatus.RUNNING


async def test_concurrent_claimers_never_take_an_element_twice(stores: SqlStores) -> None:
    await shared_run(stores, count=60)

    claimed = await asyncio.gather(
        *(stores.of(f"w{n}").claim_elements(utcnow(), LEASE, 7) for n in range(6))
    )

    taken = [index for works in claimed for index in indexes(works)]
    assert len(taken) == len(set(taken))


async def test_max_concurrency_caps_the_elements_running_across_workers(
    stores: SqlStores,
) -> None:
    await shared_run(stores, count=10, max_concurrency=3)

    first = await stores.of("w2").claim_elements(utcnow(), LEASE, 2)
    second = await stores.of("w3").claim_elements(utcnow(), LEASE, 100)
    assert (len(indexes(first)), len(indexes(second))) == (2, 1)
    assert await stores.of("w4").claim_elements(utcnow(), LEASE, 100) == []

    assert await stores.of("w2").finish_elements(ends(first[0])) == {
        element.task_id for element in first[0].elements
    }
    assert len(indexes(await stores.of("w4").claim_elements(utcnow(), LEASE, 100))) == 2


async def test_an_element_whose_lease_expired_is_taken_over_and_its_first_worker_records_nothing(
    stores: SqlStores,
) -> None:
    await shared_run(stores, count=3)
    (lost,) = await stores.of("w2").claim_elements(utcnow(), LEASE, 100)

    later = utcnow() + timedelta(seconds=LEASE + 1)
    (taken,) = await stores.of("w3").claim_elements(later, LEASE, 100)

    assert indexes([taken]) == indexes([lost])
    assert await stores.of("w2").renew_elements(
        [e.task_id for e in lost.elements], utcnow(), LEASE
    ) == {e.task_id for e in lost.elements}
    assert await stores.of("w2").finish_elements(ends(lost)) == set()
    element = await stores.of("w3").task("r1", "fan", 0)
    assert element is not None
    assert element.status is TaskStatus.RUNNING
    assert len(await stores.of("w3").finish_elements(ends(taken))) == 3


async def test_elements_released_by_their_worker_are_taken_over_at_once(
    stores: SqlStores,
) -> None:
    await shared_run(stores, count=3)
    (released,) = await stores.of("w2").claim_elements(utcnow(), LEASE, 100)
    assert await stores.of("w3").claim_elements(utcnow(), LEASE, 100) == []  # held

    await stores.of("w2").release_elements([e.task_id for e in released.elements], utcnow())
    (taken,) = await stores.of("w3").claim_elements(utcnow(), LEASE, 100)  # not after LEASE

    assert indexes([taken]) == indexes([released])
    assert await stores.of("w2").finish_elements(ends(released)) == set()
    assert len(await stores.of("w3").finish_elements(ends(taken))) == 3


async def test_the_last_elements_end_wakes_the_parked_run_once_with_outputs_in_order(
    stores: SqlStores,
) -> None:
    owner = await shared_run(stores, count=5)
    assert await owner.run_parked("r1", None, [], [], ["fan"]) is True
    claimers = [stores.of(f"w{n + 2}") for n in range(5)]
    works = [(claimer, await claimer.claim_elements(utcnow(), LEASE, 1)) for claimer in claimers]
    worker = stores.of("w9")

    for claimer, (work,) in reversed(works[1:]):  # ends in any order, from any worker
        assert len(await claimer.finish_elements(ends(work))) == 1
        assert await worker.claim(utcnow(), LEASE, 10) == []  # not yet
    claimer, (work,) = works[0]
    await claimer.finish_elements(ends(work))

    (woken,) = await worker.claim(utcnow(), LEASE, 10)
    assert (woken.run_id, woken.woken) == ("r1", True)
    assert await stores.of("w8").claim(utcnow(), LEASE, 10) == []
    result = await worker.fan_out_result("r1", "fan")
    assert result is not None
    assert list(result.outputs) == [{"v": i * 10} for i in range(5)]
    assert (await worker.load("r1")).shared == frozenset({"fan"})


async def test_a_failed_element_cancels_the_rest_and_wakes_the_run_with_its_error(
    stores: SqlStores,
) -> None:
    owner = await shared_run(stores, count=6)
    assert await owner.run_parked("r1", None, [], [], ["fan"]) is True
    (work,) = await stores.of("w2").claim_elements(utcnow(), LEASE, 2)
    failing = replace(work, elements=work.elements[:1])
    ok = replace(work, elements=work.elements[1:])

    await stores.of("w2").finish_elements(ends(failing, TaskStatus.FAILED))

    assert await stores.of("w3").claim_elements(utcnow(), LEASE, 100) == []
    assert await stores.of("w2").finish_elements(ends(ok)) == set()  # cancelled meanwhile
    (woken,) = await stores.of("w3").claim(utcnow(), LEASE, 10)
    assert woken.run_id == "r1"
    result = await stores.of("w3").fan_out_result("r1", "fan")
    assert result is not None
    assert result.error is not None
    assert result.failed == TaskKey("fan", failing.elements[0].index)
    assert result.error.message == "no"
    statuses = await element_statuses(stores.of("w3"), 6)
    assert sorted(statuses) == [TaskStatus.CANCELLED] * 5 + [TaskStatus.FAILED]


async def test_a_run_does_not_park_on_a_fan_out_that_already_ended(stores: SqlStores) -> None:
    owner = await shared_run(stores, count=2)
    (work,) = await stores.of("w2").claim_elements(utcnow(), LEASE, 10)
    await stores.of("w2").finish_elements(ends(work))

    assert await owner.run_parked("r1", None, [], [], ["fan"]) is False
    result = await owner.fan_out_result("r1", "fan")
    assert result is not None
    assert list(result.outputs) == [{"v": 0}, {"v": 10}]


async def test_cancelling_the_run_cancels_its_elements_and_ends_their_claims(
    stores: SqlStores,
) -> None:
    owner = await shared_run(stores, count=4)
    (work,) = await stores.of("w2").claim_elements(utcnow(), LEASE, 1)

    assert await owner.end("r1", RunStatus.CANCELLED, utcnow()) is True

    assert await stores.of("w3").claim_elements(utcnow(), LEASE, 100) == []
    assert await stores.of("w2").finish_elements(ends(work)) == set()
    assert await element_statuses(owner, 4) == [TaskStatus.CANCELLED] * 4


async def test_a_restarted_single_process_store_claims_its_running_elements_again_at_once(
    stores: SqlStores,
) -> None:
    await shared_run(stores, count=3)
    (before,) = await stores.of("w2").claim_elements(utcnow(), LEASE, 100)

    await stores.of("w2").expire_all(utcnow())

    (after,) = await stores.of("w3").claim_elements(utcnow(), LEASE, 100)
    assert indexes([after]) == indexes([before])

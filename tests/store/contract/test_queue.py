"""The queue, on every run store: claims, leases, renewal, release, take-over."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.clock import utcnow
from app.domain.runs import RunStatus, TaskKey
from app.errors import LeaseLostError
from tests.store.contract.conftest import LEASE, T0, Stores, new_run


async def queued_runs(stores: Stores, count: int) -> list[str]:
    """`count` queued runs of flow "f", created a second apart, oldest first."""
    definition_id = await stores.flow("f", await stores.user("u1"))
    store = stores.of("api")
    ids = [f"run-{index}" for index in range(count)]
    for index, run_id in enumerate(ids):
        await store.create(new_run(run_id, definition_id, created_at=T0 + timedelta(seconds=index)))
    return ids


async def test_a_claim_takes_queued_runs_oldest_first_and_leases_them(stores: Stores) -> None:
    ids = await queued_runs(stores, 3)

    claimed = await stores.of("w1").claim(T0, LEASE, 2)

    assert [(claim.run_id, claim.taken_over) for claim in claimed] == [
        (ids[0], False),
        (ids[1], False),
    ]
    assert claimed[0].inputs == {"n": 1}
    run = await stores.of("w1").get(ids[0])
    assert run is not None
    assert run.status is RunStatus.RUNNING
    assert [claim.run_id for claim in await stores.of("w2").claim(T0, LEASE, 10)] == [ids[2]]
    assert await stores.of("w3").claim(T0, LEASE, 10) == []  # no run claimed twice


async def test_a_run_whose_lease_expired_is_taken_over(stores: Stores) -> None:
    (run_id,) = await queued_runs(stores, 1)
    await stores.of("w1").claim(T0, LEASE, 10)

    assert await stores.of("w2").claim(T0 + timedelta(seconds=LEASE - 1), LEASE, 10) == []
    (taken,) = await stores.of("w2").claim(T0 + timedelta(seconds=LEASE), LEASE, 10)

    assert (taken.run_id, taken.taken_over) == (run_id, True)


async def test_renewal_extends_held_leases_and_reports_lost_runs(stores: Stores) -> None:
    taken, kept, cancelled = await queued_runs(stores, 3)
    first = stores.of("w1")
    await first.claim(T0, LEASE, 10)
    await stores.of("w2").claim(T0 + timedelta(seconds=LEASE), LEASE, 1)  # the oldest: `taken`
    await stores.of("api").end(cancelled, RunStatus.CANCELLED, T0)
    later = T0 + timedelta(seconds=LEASE + 1)

    lost = await first.renew([kept, taken, cancelled], later, LEASE)

    assert lost == {taken, cancelled}
    # `kept` is held until later + LEASE: another worker cannot take it over before.
    claimed = await stores.of("w3").claim(later + timedelta(seconds=LEASE - 1), LEASE, 10)
    assert kept not in [claim.run_id for claim in claimed]
    (again,) = await stores.of("w3").claim(later + timedelta(seconds=LEASE), LEASE, 10)
    assert again.run_id == kept


async def test_a_released_run_is_claimable_at_once_and_resumes(stores: Stores) -> None:
    (run_id,) = await queued_runs(stores, 1)
    first = stores.of("w1")
    await first.claim(T0, LEASE, 10)

    await stores.of("w2").release([run_id], T0)  # not its lease: nothing changes
    assert await stores.of("w2").claim(T0, LEASE, 10) == []
    await first.release([run_id], T0)
    (taken,) = await stores.of("w2").claim(T0, LEASE, 10)

    assert (taken.run_id, taken.taken_over) == (run_id, True)


async def test_every_running_run_expires_at_once_on_a_single_process_restart(
    stores: Stores,
) -> None:
    ids = await queued_runs(stores, 3)
    await stores.of("w1").claim(T0, LEASE, 2)

    assert await stores.of("w1").expire_all(T0) == 2
    claimed = await stores.of("w1").claim(T0, LEASE, 10)

    assert [(claim.run_id, claim.taken_over) for claim in claimed] == [
        (ids[0], True),
        (ids[1], True),
        (ids[2], False),
    ]


async def test_writes_need_the_unexpired_lease_of_a_running_run(stores: Stores) -> None:
    (run_id,) = await queued_runs(stores, 1)
    now = utcnow()
    first, second = stores.of("w1"), stores.of("w2")
    await first.claim(now - timedelta(seconds=LEASE), LEASE, 10)  # its lease has run out
    await first.tasks_expanded(run_id, "a", 1)  # nothing to write: no lease needed

    with pytest.raises(LeaseLostError, match=run_id):
        await first.tasks_expanded(run_id, "a", 2)
    await second.claim(now, LEASE, 10)  # taken over
    await second.tasks_expanded(run_id, "a", 2)
    with pytest.raises(LeaseLostError):
        await first.tasks_expanded(run_id, "b", 2)

    await stores.of("api").end(run_id, RunStatus.CANCELLED, now)  # ended elsewhere
    with pytest.raises(LeaseLostError):
        await second.tasks_expanded(run_id, "b", 2)
    run = await second.get(run_id)
    assert run is not None
    assert [(step.step_id, step.task_index) for step in run.steps] == [
        ("a", 0),
        ("b", 0),
        ("a", 1),
    ]
    assert await second.task(run_id, "a", 1) is not None
    assert await second.task(run_id, "b", 1) is None
    assert TaskKey("a", 1).task_index == 1

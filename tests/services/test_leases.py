"""Two service processes on one store: takeover, refused late results, cancels that travel.

Each `Services` here stands for a process (its own worker id, pools and run store); they share
one database as the API and worker processes of a deployment do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from app.domain.clock import utcnow
from app.domain.runs import RunStatus, TaskStatus
from app.errors import RunStateError, StoreUnavailableError, UnknownFlowError
from app.services.container import Services
from app.store.models import FlowRunRow
from app.store.queries import versions
from app.worker.claim_loop import ClaimLoop
from tests.callers import admin
from tests.databases import fresh_store_database, migrate_to_head
from tests.polling import until
from tests.services import sample_tasks
from tests.services.conftest import opened_services
from tests.services.test_runs import CHAIN, GATED, wait_until_finished


@pytest.fixture
async def postgres_store(tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_store_database("postgresql", tmp_path) as url:
        await migrate_to_head(url)
        yield url


async def expire_lease(services: Services, run_id: str) -> None:
    """As if the run's worker stalled past its lease."""
    async with services.store.engine.begin() as connection:
        await connection.execute(
            update(FlowRunRow).where(FlowRunRow.id == run_id).values(lease_expires_at=utcnow())
        )


async def test_a_stalled_worker_cannot_record_its_late_result(migrated_store_url: str) -> None:
    async with (
        opened_services(migrated_store_url) as stalled,
        opened_services(migrated_store_url) as other,
    ):
        await stalled.flows.register(await admin(stalled), GATED)
        run_id = (await stalled.runs.execute(await admin(stalled), "Gated", {}, wait=0)).run.run_id
        first_execution = stalled.runner.in_flight[run_id]
        await until(lambda: sample_tasks.calls["gate"] == 1)
        await expire_lease(stalled, run_id)

        assert await other.runner.claim(5) == 1  # taken over
        await until(lambda: sample_tasks.calls["gate"] == 2)  # the step runs again there
        sample_tasks.gates["gate"].set()  # both attempts finish
        finished = await wait_until_finished(other, run_id)

        assert await first_execution is None  # its finish was refused; it stopped there
        assert finished.status is RunStatus.COMPLETED
        assert sample_tasks.calls["after"] == 1  # the late result released nothing
        assert [(step.step_id, step.status) for step in finished.steps] == [
            ("wait", TaskStatus.COMPLETED),
            ("after", TaskStatus.COMPLETED),
        ]


async def test_a_run_cancelled_from_another_process_stops_at_the_next_renewal(
    migrated_store_url: str,
) -> None:
    async with (
        opened_services(migrated_store_url) as runner,
        opened_services(migrated_store_url) as api,
    ):
        await runner.flows.register(await admin(runner), GATED)
        run_id = (await runner.runs.execute(await admin(runner), "Gated", {}, wait=0)).run.run_id
        await until(lambda: sample_tasks.calls["gate"] == 1)

        cancelled = await api.runs.cancel(await admin(api), run_id)
        await runner.runner.renew_leases()  # no notification on this store: the beat finds out

        assert cancelled.status is RunStatus.CANCELLED
        await until(lambda: run_id not in runner.runner.in_flight)
        sample_tasks.gates["gate"].set()
        record = await api.runs.get(run_id)
        assert record.status is RunStatus.CANCELLED
        assert [step.status for step in record.steps] == [TaskStatus.CANCELLED] * 2
        assert sample_tasks.calls["after"] == 0


async def test_a_cancel_reaches_the_run_on_another_process_at_once(postgres_store: str) -> None:
    # Leases of a minute: the heartbeat would find out in 20 s; only the notification is fast.
    async with (
        opened_services(postgres_store, lease_seconds=60) as runner,
        opened_services(postgres_store, lease_seconds=60) as api,
    ):
        await runner.start()
        assert runner.listener is not None
        await until(runner.listener.listening.is_set)
        await runner.flows.register(await admin(runner), GATED)
        run_id = (await runner.runs.execute(await admin(runner), "Gated", {}, wait=0)).run.run_id
        await until(lambda: sample_tasks.calls["gate"] == 1)

        await api.runs.cancel(await admin(api), run_id)

        await until(lambda: run_id not in runner.runner.in_flight, deadline=5)
        assert (await api.runs.get(run_id)).status is RunStatus.CANCELLED


async def test_a_queued_run_wakes_a_worker_on_another_opened_services(postgres_store: str) -> None:
    async with (
        opened_services(postgres_store) as worker_process,
        opened_services(postgres_store) as api,
    ):
        await worker_process.start()
        assert worker_process.listener is not None
        await until(worker_process.listener.listening.is_set)
        worker = ClaimLoop(worker_process.runner, concurrency=2, poll_interval=60)
        await worker.start()  # its first claim finds nothing; then it waits for a minute
        try:
            await api.flows.register(await admin(api), CHAIN)
            run_id = (await api.runs.start(await admin(api), "Chain", {"n": 1})).run.run_id

            finished = await wait_until_finished(api, run_id, deadline=5)
        finally:
            await worker.stop()

        assert finished.status is RunStatus.COMPLETED


FLAKY = """
flow: Flaky
steps:
  - task: FailUntilAllowed
    id: flaky
    inputs: {name: flaky}
    retry: {max_attempts: 3, delay: 1}
"""


async def test_a_taken_over_retry_keeps_its_attempt_count_and_its_due_time(
    migrated_store_url: str,
) -> None:
    sample_tasks.failures_left["flaky"] = 1
    async with (
        opened_services(migrated_store_url) as stalled,
        opened_services(migrated_store_url) as other,
    ):
        await stalled.flows.register(await admin(stalled), FLAKY)
        run_id = (await stalled.runs.execute(await admin(stalled), "Flaky", {}, wait=0)).run.run_id

        async def waiting_for_retry() -> bool:
            (task,) = (await other.runs.get(run_id)).steps
            return task.status is TaskStatus.QUEUED and task.error is not None

        await until(waiting_for_retry)  # attempt 1 failed; attempt 2 is due in a second
        (failed,) = (await other.runs.get(run_id)).steps
        await expire_lease(stalled, run_id)
        assert await other.runner.claim(5) == 1
        await stalled.runner.renew_leases()  # the stalled worker finds out, and stops
        finished = await wait_until_finished(other, run_id)

        (task,) = finished.steps
        assert finished.status is RunStatus.COMPLETED
        assert (task.attempts, sample_tasks.calls["flaky"]) == (2, 2)
        assert failed.available_at is not None
        assert task.started_at is not None
        assert task.started_at >= failed.available_at


async def test_two_processes_retrying_a_run_at_once_resume_it_once(
    migrated_store_url: str,
) -> None:
    sample_tasks.failures_left["second"] = 1
    async with (
        opened_services(migrated_store_url) as one,
        opened_services(migrated_store_url) as two,
    ):
        await one.flows.register(await admin(one), CHAIN)
        failed = (await one.runs.execute(await admin(one), "Chain", {"n": 1}, wait=10)).run
        assert failed.status is RunStatus.FAILED

        answers = await asyncio.gather(
            one.runs.retry(await admin(one), failed.run_id),
            two.runs.retry(await admin(two), failed.run_id),
            return_exceptions=True,
        )

        refused = [answer for answer in answers if isinstance(answer, RunStateError)]
        assert len(refused) == 1
        finished = await wait_until_finished(one, failed.run_id)
        assert finished.status is RunStatus.COMPLETED
        assert (sample_tasks.calls["first"], sample_tasks.calls["second"]) == (1, 2)


async def test_two_processes_given_one_idempotency_key_at_once_make_one_run(
    migrated_store_url: str,
) -> None:
    async with (
        opened_services(migrated_store_url) as one,
        opened_services(migrated_store_url) as two,
    ):
        await one.flows.register(await admin(one), CHAIN)

        started = await asyncio.gather(
            one.runs.start(await admin(one), "Chain", {"n": 1}, idempotency_key="k"),
            two.runs.start(await admin(two), "Chain", {"n": 1}, idempotency_key="k"),
        )

        assert started[0].run.run_id == started[1].run.run_id
        assert sorted(answer.created for answer in started) == [False, True]


async def test_a_run_whose_store_fails_for_a_moment_is_handed_over_not_failed(
    migrated_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with opened_services(migrated_store_url) as services:
        await services.flows.register(await admin(services), CHAIN)
        store = services.run_store
        finish = store.task_finished
        outages = [StoreUnavailableError("the database went away")]

        async def flaky_finish(*args: Any, **kwargs: Any) -> None:
            if outages:
                raise outages.pop()
            await finish(*args, **kwargs)

        monkeypatch.setattr(store, "task_finished", flaky_finish)
        run_id = (
            await services.runs.execute(await admin(services), "Chain", {"n": 1}, wait=10)
        ).run.run_id

        handed_over = await services.runs.get(run_id)
        assert handed_over.status is RunStatus.RUNNING
        assert await services.runner.claim(5) == 1
        finished = await wait_until_finished(services, run_id)
        assert finished.status is RunStatus.COMPLETED
        assert finished.outputs == {"total": 4}  # first ran twice: its finish was never recorded


async def test_a_worker_without_the_flows_tasks_fails_the_run_it_claimed_with_the_reason(
    migrated_store_url: str,
) -> None:
    async with (
        opened_services(migrated_store_url) as api,
        opened_services(migrated_store_url, task_modules=[]) as misconfigured,
    ):
        await api.flows.register(await admin(api), CHAIN)
        run_id = (await api.runs.start(await admin(api), "Chain", {"n": 1})).run.run_id

        assert await misconfigured.runner.claim(5) == 1
        failed = await wait_until_finished(api, run_id)

        assert failed.status is RunStatus.FAILED
        assert failed.error is not None
        assert failed.error.type == "DefinitionError"
        assert "Count" in failed.error.message


async def test_runs_claimed_together_read_their_new_version_once(
    migrated_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        opened_services(migrated_store_url) as api,
        opened_services(migrated_store_url) as worker,
    ):
        await api.flows.register(await admin(api), CHAIN)
        ids = [
            (await api.runs.start(await admin(api), "Chain", {"n": n})).run.run_id
            for n in range(20)
        ]
        reads = []
        source_of = versions.source_of

        async def counted_source_of(session: Any, definition_id: int) -> tuple[str, str]:
            reads.append(definition_id)
            return await source_of(session, definition_id)

        monkeypatch.setattr(versions, "source_of", counted_source_of)

        assert await worker.runner.claim(20) == 20
        finished = [await wait_until_finished(api, run_id) for run_id in ids]

        assert {run.status for run in finished} == {RunStatus.COMPLETED}
        assert len(reads) == 1


async def test_a_version_registered_by_another_process_is_used_at_once(
    migrated_store_url: str,
) -> None:
    async with (
        opened_services(migrated_store_url) as one,
        opened_services(migrated_store_url) as two,
    ):
        await one.flows.register(await admin(one), CHAIN)
        assert (
            await one.runs.execute(await admin(one), "Chain", {"n": 1}, wait=10)
        ).run.version == 1

        await two.flows.register(await admin(two), CHAIN.replace("inputs.n}", "inputs.n + 100}"))
        second = (await one.runs.execute(await admin(one), "Chain", {"n": 1}, wait=10)).run

        assert (second.version, second.outputs) == (2, {"total": 105})
        assert (
            await one.runs.execute(await admin(one), "Chain", {"n": 1}, version=1, wait=10)
        ).run.version == 1
        await two.flows.delete(await admin(two), "Chain")
        with pytest.raises(UnknownFlowError):
            await one.runs.execute(await admin(one), "Chain", {"n": 1}, wait=10)


LIMITED = """
flow: Limited
concurrency: {limit: 1}
steps:
  - task: Count
    id: only
    inputs: {name: limited}
"""


async def test_a_limited_run_ending_wakes_the_worker_for_its_key_next_run(
    migrated_store_url: str,
) -> None:
    async with opened_services(migrated_store_url) as services:
        worker = ClaimLoop(services.runner, concurrency=5, poll_interval=60)
        await worker.start()  # its first claim finds nothing; then it waits for a minute
        try:
            await services.flows.register(await admin(services), LIMITED)
            caller = await admin(services)
            first = (await services.runs.start(caller, "Limited", {})).run.run_id
            second = (await services.runs.start(caller, "Limited", {})).run.run_id

            # The second waits for the first: only the first's end can start it in time.
            finished = [
                await wait_until_finished(services, run_id, deadline=5)
                for run_id in (first, second)
            ]
        finally:
            await worker.stop()

    assert [run.status for run in finished] == [RunStatus.COMPLETED] * 2
    assert sample_tasks.calls["limited"] == 2


async def test_a_worker_joining_or_leaving_is_counted_by_the_others_at_once(
    postgres_store: str,
) -> None:
    # Leases of a minute: a beat every 20 s; only the notification is fast.
    async with opened_services(postgres_store, lease_seconds=60) as first:
        await first.start()
        assert first.listener is not None
        await until(first.listener.listening.is_set)
        assert first.heartbeat.claiming_workers == 1

        async with opened_services(postgres_store, lease_seconds=60) as second:
            await second.start()
            assert second.heartbeat.claiming_workers == 2  # counted as it registered

            await until(lambda: first.heartbeat.claiming_workers == 2, deadline=5)

        await until(lambda: first.heartbeat.claiming_workers == 1, deadline=5)

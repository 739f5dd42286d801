"""The in-memory run store: transitions recorded as the engine reports them, bounded size."""

from __future__ import annotations

from datetime import UTC, datetime

from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus
from app.engine.memory_store import InMemoryRunStore
from app.engine.store import NewRun, RunEnd, TaskFinish

AT = datetime(2026, 1, 1, tzinfo=UTC)


def new_run(run_id: str = "r1") -> NewRun:
    return NewRun(run_id, "F", {"n": 1}, ["a", "b", "c"], ["a"], AT)


async def test_run_starts_with_ready_steps_queued_and_the_rest_pending() -> None:
    store = InMemoryRunStore()
    await store.run_started(new_run())

    tasks = store.get("r1").tasks
    assert [tasks[TaskKey(s)].status for s in "abc"] == [
        TaskStatus.QUEUED,
        TaskStatus.PENDING,
        TaskStatus.PENDING,
    ]
    assert store.get("r1").remaining_steps == 3


async def test_finishing_a_task_releases_the_steps_it_unblocks() -> None:
    store = InMemoryRunStore()
    await store.run_started(new_run())
    await store.task_started("r1", TaskKey("a"), 1, AT)
    await store.task_finished(
        "r1", TaskFinish(TaskKey("a"), TaskStatus.COMPLETED, {"x": 1}, None, AT, ["b"])
    )

    tasks = store.get("r1").tasks
    assert tasks[TaskKey("a")].outputs == {"x": 1}
    assert tasks[TaskKey("b")].status is TaskStatus.QUEUED
    assert tasks[TaskKey("c")].status is TaskStatus.PENDING
    assert store.get("r1").remaining_steps == 2


async def test_a_failed_element_cancels_the_rest_of_its_fan_out() -> None:
    store = InMemoryRunStore()
    await store.run_started(new_run())
    await store.tasks_expanded("r1", "a", 3)
    error = RunError("a", "TaskError", "no")
    await store.task_finished("r1", TaskFinish(TaskKey("a", 1), TaskStatus.FAILED, None, error, AT))

    tasks = store.get("r1").tasks
    assert [tasks[TaskKey("a", i)].status for i in range(3)] == [
        TaskStatus.CANCELLED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
    ]
    assert tasks[TaskKey("b")].status is TaskStatus.PENDING


async def test_finishing_a_run_cancels_its_unfinished_tasks() -> None:
    store = InMemoryRunStore()
    await store.run_started(new_run())
    await store.run_finished("r1", RunEnd(RunStatus.FAILED, None, RunError("a", "E", "m"), AT))

    run = store.get("r1")
    assert run.status is RunStatus.FAILED
    assert {task.status for task in run.tasks.values()} == {TaskStatus.CANCELLED}
    assert run.remaining_steps == 0


async def test_only_the_newest_runs_are_kept() -> None:
    store = InMemoryRunStore(max_runs=2)
    for run_id in ("r1", "r2", "r3"):
        await store.run_started(new_run(run_id))

    assert list(store.runs) == ["r2", "r3"]

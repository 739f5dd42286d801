"""What tasks log, kept per attempt on every run store: with a retry, with a finish, with the
finish that ends the run, never for a writer that lost its lease."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.clock import utcnow
from app.domain.records import AttemptLog, LogLine
from app.domain.runs import RunError, RunStatus, TaskKey, TaskStatus
from app.engine.store import NewRun, RunEnd, TaskFinish
from app.errors import LeaseLostError
from tests.store.contract.conftest import Stores, new_run


def logged(attempt: int, *messages: str, truncated: bool = False) -> AttemptLog:
    at = utcnow().replace(microsecond=0)
    return AttemptLog(attempt, tuple(LogLine(at, "info", m) for m in messages), truncated)


async def test_each_attempt_keeps_its_lines(stores: Stores) -> None:
    store = stores.of("w1")
    definition_id = await stores.flow("f", await stores.user("u1"))
    await store.create(new_run("r1", definition_id, steps=("a", "b"), owner="w1"))
    now = utcnow()
    await store.run_started(NewRun("r1", "f", {}, ["a", "b"], ["a"], now))
    error = RunError("a", "TaskError", "no")
    first, second = logged(1, "trying", "failed"), logged(2, "trying again")
    last = logged(1, "ü" * 10, truncated=True)

    await store.attempt_failed("r1", TaskKey("a"), 1, error, now + timedelta(seconds=1), first)
    await store.task_finished(
        "r1", TaskFinish(TaskKey("a"), TaskStatus.COMPLETED, {}, None, now, ["b"], log=second)
    )
    ended = RunEnd(RunStatus.COMPLETED, {}, None, now)
    await store.task_finished(
        "r1", TaskFinish(TaskKey("b"), TaskStatus.COMPLETED, {}, None, now, ended=ended, log=last)
    )

    assert await store.task_logs("r1", "a", 0, None) == [first, second]
    assert await store.task_logs("r1", "a", 0, 2) == [second]
    assert await store.task_logs("r1", "b", 0, None) == [last]
    assert await store.task_logs("r1", "b", 1, None) == []
    assert await store.task_logs("r2", "a", 0, None) == []


async def test_a_writer_without_the_lease_keeps_no_lines(stores: Stores) -> None:
    store = stores.of("w1")
    definition_id = await stores.flow("f", await stores.user("u1"))
    await store.create(new_run("r1", definition_id, steps=("a",), owner="w2"))
    now = utcnow()

    finish = TaskFinish(TaskKey("a"), TaskStatus.COMPLETED, {}, None, now, log=logged(1, "x"))
    with pytest.raises(LeaseLostError):
        await store.task_finished("r1", finish)

    assert await stores.of("w2").task_logs("r1", "a", 0, None) == []

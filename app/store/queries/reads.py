"""Reading runs: one run with its tasks, one task, a page of runs. Read-only statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, bindparam, case, cast, func, null, select, tuple_, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, defer
from sqlalchemy.sql.elements import ColumnElement

from app.domain.concurrency import shown_key
from app.domain.records import (
    AttemptLog,
    ChildRun,
    LogLine,
    OmittedValue,
    RunRecord,
    StepRecord,
)
from app.domain.runs import RunError, RunStatus, TaskStatus
from app.engine.store import StoredRun
from app.store.models import (
    FLOWS,
    RUNS,
    TASK_LOGS,
    TASKS,
    USERS,
    FlowDefinitionRow,
    FlowRunRow,
    TaskRunRow,
)
from app.store.queries import flows
from app.store.types import JsonDocument

_WITH_VERSION = (
    select(FlowRunRow, FlowDefinitionRow.version, USERS.c.username)
    .join(FlowDefinitionRow, FlowRunRow.definition_id == FlowDefinitionRow.id)
    .outerjoin(USERS, USERS.c.id == FlowRunRow.created_by)
)


async def get(session: AsyncSession, run_id: str, *, with_steps: bool = True) -> RunRecord | None:
    """The run (with every task unless told otherwise), or None."""
    found = (await session.execute(_WITH_VERSION.where(FlowRunRow.id == run_id))).one_or_none()
    if found is None:
        return None
    run, version, created_by = found
    if not with_steps:
        return to_record(run, version, [], created_by)
    tasks = (
        await session.execute(
            select(TaskRunRow).where(TaskRunRow.run_id == run_id).order_by(TaskRunRow.id)
        )
    ).scalars()
    steps = [to_step(task) for task in tasks]
    children = [
        ChildRun(row.id, row.parent_step_id, RunStatus(row.status))
        for row in await session.execute(_CHILDREN, {"parent": run_id})
    ]
    return to_record(run, version, steps, created_by, children=children)


_CHILDREN = (
    select(RUNS.c.id, RUNS.c.parent_step_id, RUNS.c.status)
    .where(RUNS.c.parent_run_id == bindparam("parent"))
    .order_by(RUNS.c.created_at)
)


async def task(
    session: AsyncSession, run_id: str, step_id: str, task_index: int
) -> StepRecord | None:
    """One task of the run (a step, or one element of a fan-out), or None."""
    found = (
        await session.execute(
            select(TaskRunRow).where(
                TaskRunRow.run_id == run_id,
                TaskRunRow.step_id == step_id,
                TaskRunRow.task_index == task_index,
            )
        )
    ).scalar_one_or_none()
    return None if found is None else to_step(found)


async def page(
    session: AsyncSession,
    *,
    flow: str | None,
    status: RunStatus | None,
    limit: int,
    after: tuple[datetime, str] | None,
    viewer: str | None,
    value_limit: int | None = None,
    parent: str | None = None,
) -> list[RunRecord]:
    """Runs newest first, without their tasks, of the flows the user `viewer` may see (of
    every flow with None); `after` is the (created_at, id) of the last seen; `parent`: only
    the children of that run.

    With `value_limit`, inputs and outputs whose JSON text is longer than that are not read:
    they come back as `OmittedValue` (a page of runs never loads megabytes per run).
    """
    bounded = [] if value_limit is None else _bounded_values(value_limit)
    statement = _WITH_VERSION.add_columns(*bounded)
    if bounded:
        statement = statement.options(defer(FlowRunRow.inputs), defer(FlowRunRow.outputs))
    if viewer is not None:
        statement = statement.join(FLOWS, FLOWS.c.name == FlowRunRow.flow_name).where(
            flows.visible_to(viewer)
        )
    if flow is not None:
        statement = statement.where(FlowRunRow.flow_name == flow)
    if status is not None:
        statement = statement.where(FlowRunRow.status == status.value)
    if parent is not None:
        statement = statement.where(FlowRunRow.parent_run_id == parent)
    if after is not None:
        statement = statement.where(tuple_(FlowRunRow.created_at, FlowRunRow.id) < after)
    statement = statement.order_by(FlowRunRow.created_at.desc(), FlowRunRow.id.desc()).limit(limit)
    rows = await session.execute(statement)
    if value_limit is None:
        return [to_record(run, version, [], created_by) for run, version, created_by in rows]
    return [
        to_record(
            run,
            version,
            [],
            created_by,
            inputs=_read(inputs, inputs_size, value_limit),
            outputs=_read(outputs, outputs_size, value_limit),
        )
        for run, version, created_by, inputs, inputs_size, outputs, outputs_size in rows
    ]


def _bounded_values(limit: int) -> list[ColumnElement[Any]]:
    """inputs, its text's length, outputs, its text's length: each value NULL past `limit`."""
    columns: list[ColumnElement[Any]] = []
    for column in (FlowRunRow.inputs, FlowRunRow.outputs):
        columns.extend(_bounded(column, limit))
    return columns


def _bounded(column: InstrumentedAttribute[Any], limit: int) -> list[ColumnElement[Any]]:
    size = func.length(cast(column, Text))
    value = type_coerce(case((size > limit, null()), else_=column), JsonDocument)
    return [value, size]


def _read(value: Any, size: int | None, limit: int) -> Any:
    return OmittedValue(size) if size is not None and size > limit else value


_UNREAD = object()


def to_record(
    run: FlowRunRow,
    version: int,
    steps: Sequence[StepRecord],
    created_by: str | None = None,
    *,
    inputs: Any = _UNREAD,
    outputs: Any = _UNREAD,
    children: Sequence[ChildRun] = (),
) -> RunRecord:
    """The run's record; `inputs` and `outputs` when they were read apart from its row."""
    return RunRecord(
        run_id=run.id,
        flow=run.flow_name,
        version=version,
        status=RunStatus(run.status),
        inputs=run.inputs if inputs is _UNREAD else inputs,
        outputs=run.outputs if outputs is _UNREAD else outputs,
        error=RunError.of(run.error),
        remaining_steps=run.remaining_steps,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        steps=tuple(steps),
        created_by=created_by,
        forked_from=run.forked_from,
        parent_run_id=run.parent_run_id,
        parent_step_id=run.parent_step_id,
        children=tuple(children),
        priority=run.priority,
        concurrency_key=shown_key(run.flow_name, run.concurrency_key),
        concurrency_limit=run.concurrency_limit,
    )


_INPUTS = select(RUNS.c.inputs).where(RUNS.c.id == bindparam("run"))
_TASKS = (
    select(
        TASKS.c.step_id,
        TASKS.c.task_index,
        TASKS.c.status,
        TASKS.c.attempts,
        TASKS.c.outputs,
        TASKS.c.error,
        TASKS.c.started_at,
        TASKS.c.finished_at,
        TASKS.c.available_at,
    )
    .where(TASKS.c.run_id == bindparam("run"))
    .order_by(TASKS.c.id)
)


async def stored(session: AsyncSession, run_id: str) -> StoredRun | None:
    """What a run kept, to resume it: its inputs and its tasks, and nothing else (a woken or
    taken-over run reads this, not the whole record `get` builds for an answer)."""
    inputs = (await session.execute(_INPUTS, {"run": run_id})).first()
    if inputs is None:
        return None
    tasks = [to_step(row) for row in await session.execute(_TASKS, {"run": run_id})]
    return StoredRun(run_id, inputs.inputs, tasks)


def to_step(task: Any) -> StepRecord:
    """A task's record, from its ORM row or the columns `_TASKS` reads."""
    return StepRecord(
        step_id=task.step_id,
        task_index=task.task_index,
        status=TaskStatus(task.status),
        attempts=task.attempts,
        outputs=task.outputs,
        error=RunError.of(task.error),
        started_at=task.started_at,
        finished_at=task.finished_at,
        available_at=task.available_at,
    )


_TASK_LOGS = (
    select(TASK_LOGS.c.attempt, TASK_LOGS.c.lines, TASK_LOGS.c.truncated)
    .where(
        TASK_LOGS.c.run_id == bindparam("run"),
        TASK_LOGS.c.step_id == bindparam("step"),
        TASK_LOGS.c.task_index == bindparam("index"),
    )
    .order_by(TASK_LOGS.c.attempt, TASK_LOGS.c.id)
)


async def task_logs(
    session: AsyncSession, run_id: str, step_id: str, task_index: int, attempt: int | None
) -> list[AttemptLog]:
    """What one task logged, attempt by attempt (of one attempt, when given)."""
    statement = _TASK_LOGS
    if attempt is not None:
        statement = statement.where(TASK_LOGS.c.attempt == attempt)
    parameters = {"run": run_id, "step": step_id, "index": task_index}
    rows = (await session.execute(statement, parameters)).all()
    return [
        AttemptLog(row.attempt, tuple(LogLine.of(line) for line in row.lines), row.truncated)
        for row in rows
    ]

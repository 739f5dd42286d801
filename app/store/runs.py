"""Runs and their tasks: create, read, list, change state. The caller owns the transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Text,
    bindparam,
    case,
    cast,
    func,
    insert,
    null,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, defer
from sqlalchemy.sql.elements import ColumnElement

from app.domain.records import NewRunRow, OmittedValue, RunRecord, StepRecord
from app.domain.runs import (
    ACTIVE_RUN_STATUSES,
    UNFINISHED_TASK_STATUSES,
    RunError,
    RunStatus,
    TaskStatus,
)
from app.store import flows
from app.store.models import (
    FLOWS,
    RUNS,
    TASKS,
    USERS,
    FlowDefinitionRow,
    FlowRunRow,
    TaskRunRow,
)
from app.store.types import JsonDocument


async def create(session: AsyncSession, run: NewRunRow) -> None:
    """A new run with one pending task per step, so it shows every step before it starts."""
    await session.execute(
        insert(RUNS),
        {
            "id": run.run_id,
            "flow_name": run.flow_name,
            "definition_id": run.definition_id,
            "status": run.status.value,
            "inputs": run.inputs,
            "remaining_steps": len(run.step_ids),
            "idempotency_key": run.idempotency_key,
            "created_at": run.created_at,
            "created_by": run.created_by,
            "lease_owner": run.lease_owner,
            "lease_expires_at": run.lease_expires_at,
        },
    )
    if run.step_ids:
        await session.execute(
            insert(TASKS),
            [
                {"run_id": run.run_id, "step_id": step_id, "task_index": 0, "status": "pending"}
                for step_id in run.step_ids
            ],
        )


async def id_for_key(
    session: AsyncSession, idempotency_key: str, flow_name: str, created_by: str | None
) -> str | None:
    """The run an earlier request of the same caller on the same flow made with the key."""
    statement = select(FlowRunRow.id).where(
        FlowRunRow.idempotency_key == idempotency_key,
        FlowRunRow.flow_name == flow_name,
        FlowRunRow.created_by == created_by,
    )
    return (await session.execute(statement)).scalar_one_or_none()


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
    return to_record(run, version, [to_step(task) for task in tasks], created_by)


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


async def definition_id_of(session: AsyncSession, run_id: str) -> int | None:
    statement = select(FlowRunRow.definition_id).where(FlowRunRow.id == run_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def page(
    session: AsyncSession,
    *,
    flow: str | None,
    status: RunStatus | None,
    limit: int,
    after: tuple[datetime, str] | None,
    viewer: str | None,
    value_limit: int | None = None,
) -> list[RunRecord]:
    """Runs newest first, without their tasks, of the flows the user `viewer` may see (of
    every flow with None); `after` is the (created_at, id) of the last seen.

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


async def change_status(
    session: AsyncSession,
    run_id: str,
    status: RunStatus,
    *,
    only_from: Collection[RunStatus],
    **values: Any,
) -> bool:
    """Compare-and-set the run's status; False when it was not in `only_from`."""
    result = await session.execute(
        update(FlowRunRow)
        .where(FlowRunRow.id == run_id, FlowRunRow.status.in_([s.value for s in only_from]))
        .values(status=status.value, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def end_active(
    session: AsyncSession, run_id: str, status: RunStatus, at: datetime, **values: Any
) -> bool:
    """End a queued or running run (and cancel its unfinished tasks); False when it was not
    active."""
    ended = await change_status(
        session,
        run_id,
        status,
        only_from=ACTIVE_RUN_STATUSES,
        finished_at=at,
        lease_owner=None,
        lease_expires_at=None,
        **values,
    )
    if ended:
        await cancel_unfinished_tasks(session, run_id, at)
    return ended


async def cancel_unfinished_tasks(
    db: AsyncSession | AsyncConnection, run_id: str, at: datetime, step_id: str | None = None
) -> None:
    """Cancel the run's unfinished tasks (of one step only, when given)."""
    if step_id is None:
        await db.execute(_CANCEL_UNFINISHED, {"run": run_id, "at": at})
    else:
        await db.execute(_CANCEL_UNFINISHED_OF_STEP, {"run": run_id, "at": at, "step": step_id})


_WITH_VERSION = (
    select(FlowRunRow, FlowDefinitionRow.version, USERS.c.username)
    .join(FlowDefinitionRow, FlowRunRow.definition_id == FlowDefinitionRow.id)
    .outerjoin(USERS, USERS.c.id == FlowRunRow.created_by)
)
UNFINISHED_TASK_VALUES = sorted(status.value for status in UNFINISHED_TASK_STATUSES)
_CANCEL_UNFINISHED = (  # built once: it ends every run
    update(TASKS)
    .where(TASKS.c.run_id == bindparam("run"), TASKS.c.status.in_(UNFINISHED_TASK_VALUES))
    .values(status=TaskStatus.CANCELLED.value, finished_at=bindparam("at"))
)
_CANCEL_UNFINISHED_OF_STEP = _CANCEL_UNFINISHED.where(TASKS.c.step_id == bindparam("step"))


_UNREAD = object()


def to_record(
    run: FlowRunRow,
    version: int,
    steps: Sequence[StepRecord],
    created_by: str | None = None,
    *,
    inputs: Any = _UNREAD,
    outputs: Any = _UNREAD,
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
    )


def to_step(task: TaskRunRow) -> StepRecord:
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


def error_value(error: RunError | None) -> dict[str, Any] | None:
    return error.as_dict() if error else None

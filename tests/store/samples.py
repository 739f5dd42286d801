"""Rows the store tests build on."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.domain.clock import utcnow
from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.engine.store import RunEnd, TaskFinish
from app.store.database import session_factory
from app.store.models import (
    EVENTS,
    RUNS,
    TASK_LOGS,
    TASKS,
    FlowDefinitionRow,
    FlowRow,
    FlowRunRow,
    RunEventRow,
    TaskLogRow,
    TaskRunRow,
    UserRow,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def pure_finish(
    step_id: str, released: tuple[str, ...] = (), end: RunEnd | None = None
) -> TaskFinish:
    """A `set` step's finish: pure, so the store may commit it with a later write."""
    return TaskFinish(
        TaskKey(step_id), TaskStatus.COMPLETED, {step_id: 1}, None, utcnow(), released,
        ended=end, pure=True,
    )  # fmt: skip


def owner_of(name: str) -> str:
    """The id of the user `add_owner_and_flow` makes the owner of flow `name`."""
    return "u-" + hashlib.sha256(name.encode()).hexdigest()[:30]


async def add_owner_and_flow(session: AsyncSession, name: str) -> str:
    """A user and a flow `name` it owns, which a version of the flow needs; the user's id."""
    owner_id = owner_of(name)
    session.add(UserRow(id=owner_id, username=owner_id, is_admin=False, created_at=T0))
    await session.flush()
    session.add(
        FlowRow(
            name=name,
            owner_id=owner_id,
            is_public=False,
            description="",
            created_at=T0,
            updated_at=T0,
        )
    )
    await session.flush()
    return owner_id


async def add_definition(
    engine: AsyncEngine, name: str = "f", version: int = 1, document: Any = None
) -> int:
    """A stored version of flow `name` (its text is not needed; `document`: what its loaded
    definition holds, e.g. a `retention:`); its id."""
    async with session_factory(engine).begin() as session:
        if version == 1:
            await add_owner_and_flow(session, name)
        definition = FlowDefinitionRow(
            name=name,
            version=version,
            definition=document or {},
            source="",
            format="yaml",
            checksum="",
            description="",
            created_at=T0,
        )
        session.add(definition)
        await session.flush()
        return definition.id


async def add_run(
    engine: AsyncEngine,
    definition_id: int,
    status: RunStatus,
    created_at: datetime,
    flow: str = "f",
    tasks: int = 1,
) -> str:
    """A run of the version with `tasks` tasks (elements of one step), one attempt's log and
    one event, as a run that went that far leaves them; its id."""
    run_id = str(uuid.uuid4())
    finished = status not in (RunStatus.QUEUED, RunStatus.RUNNING)
    async with session_factory(engine).begin() as session:
        session.add(
            FlowRunRow(
                id=run_id,
                flow_name=flow,
                definition_id=definition_id,
                status=status.value,
                inputs={},
                remaining_steps=0 if finished else 1,
                created_at=created_at,
                finished_at=created_at if finished else None,
            )
        )
        await session.flush()
        task_status = TaskStatus.COMPLETED if finished else TaskStatus.RUNNING
        session.add_all(
            TaskRunRow(run_id=run_id, step_id="s", task_index=index, status=task_status.value)
            for index in range(tasks)
        )
        session.add(
            TaskLogRow(
                run_id=run_id,
                step_id="s",
                task_index=0,
                attempt=1,
                lines=[],
                truncated=False,
                created_at=created_at,
            )
        )
        session.add(RunEventRow(run_id=run_id, type="run", status=status.value, at=created_at))
    return run_id


async def rows_of_runs(engine: AsyncEngine, run_ids: list[str]) -> dict[str, int]:
    """How many rows of these runs each table of runs holds."""
    counts = {}
    async with engine.connect() as connection:
        for table in (RUNS, TASKS, TASK_LOGS, EVENTS):
            column = table.c.id if table is RUNS else table.c.run_id
            statement = select(func.count()).where(column.in_(run_ids))
            counts[table.name] = int((await connection.execute(statement)).scalar_one())
    return counts

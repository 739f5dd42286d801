"""Requests and answers of the routes that start, read and change runs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.engine.store import RunStatus, TaskStatus
from app.schemas.common import ErrorInfo, RequestModel, Timestamp
from app.store.records import RunPage, RunRecord, StepRecord

MAX_VERSION = 2**31 - 1  # the store's integer column

Inputs = dict[str, Any]


class StartRequest(RequestModel):
    """Start a run in the background."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"inputs": {"user_id": 1}}]})

    inputs: Inputs = Field(default_factory=dict, description="the flow's inputs by name")
    version: int | None = Field(
        None, ge=1, le=MAX_VERSION, description="run this version; default the latest"
    )


class ExecuteRequest(StartRequest):
    """Start a run and wait for it."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"inputs": {"user_id": 1}}, {"inputs": {}, "wait": 5}]}
    )

    wait: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="seconds to wait for the run to finish (default EXECUTE_WAIT_SECONDS, "
        "at most MAX_WAIT_SECONDS); 0 answers 202 at once",
    )


class ExecutionResult(BaseModel):
    run_id: str
    flow: str
    version: int
    status: RunStatus
    outputs: Any | None
    error: ErrorInfo | None
    duration_ms: float | None

    @classmethod
    def of(cls, run: RunRecord) -> ExecutionResult:
        return cls(
            run_id=run.run_id,
            flow=run.flow,
            version=run.version,
            status=run.status,
            outputs=run.outputs,
            error=ErrorInfo.of(run.error),
            duration_ms=milliseconds(run.duration_ms),
        )


class RunStarted(BaseModel):
    run_id: str
    status: RunStatus

    @classmethod
    def of(cls, run: RunRecord) -> RunStarted:
        return cls(run_id=run.run_id, status=run.status)


class StepDetail(BaseModel):
    step_id: str
    task_index: int = Field(description="the element of a fanned-out step; 0 otherwise")
    status: TaskStatus
    attempts: int
    outputs: Any | None
    error: ErrorInfo | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    duration_ms: float | None

    @classmethod
    def of(cls, step: StepRecord) -> StepDetail:
        return cls(
            step_id=step.step_id,
            task_index=step.task_index,
            status=step.status,
            attempts=step.attempts,
            outputs=step.outputs,
            error=ErrorInfo.of(step.error),
            started_at=step.started_at,
            finished_at=step.finished_at,
            duration_ms=milliseconds(step.duration_ms),
        )


class RunSummary(BaseModel):
    run_id: str
    flow: str
    version: int
    status: RunStatus
    inputs: Any
    outputs: Any | None
    error: ErrorInfo | None
    remaining_steps: int
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    created_by: str | None = Field(None, description="the user who started it")

    @classmethod
    def of(cls, run: RunRecord) -> RunSummary:
        return cls(**_run_fields(run))


class RunDetail(RunSummary):
    steps: list[StepDetail] = Field(description="every step of the run, pending ones too")

    @classmethod
    def of(cls, run: RunRecord) -> RunDetail:
        return cls(**_run_fields(run), steps=[StepDetail.of(step) for step in run.steps])


class RunList(BaseModel):
    items: list[RunSummary] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")

    @classmethod
    def of(cls, page: RunPage) -> RunList:
        return cls(items=[RunSummary.of(run) for run in page.items], next_cursor=page.next_cursor)


def milliseconds(duration: float | None) -> float | None:
    """To the microsecond the store keeps: `87.209`, not `87.20899999999999`."""
    return None if duration is None else round(duration, 3)


def _run_fields(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "flow": run.flow,
        "version": run.version,
        "status": run.status,
        "inputs": run.inputs,
        "outputs": run.outputs,
        "error": ErrorInfo.of(run.error),
        "remaining_steps": run.remaining_steps,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "created_by": run.created_by,
    }

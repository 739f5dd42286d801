"""Requests and answers of the routes that start, read and change runs.

Answers carry values within an `AnswerBudget` (`answers.py`): a value that does not fit is a
`{"truncated": true, "bytes": N, "href": ...}` marker whose `href` answers it whole.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain.concurrency import MAX_PRIORITY, MIN_PRIORITY
from app.domain.records import AttemptLog, RunPage, RunRecord, SentSignal, StepRecord
from app.domain.run_diff import RunDiff, StepDiff
from app.domain.runs import RunStatus, TaskStatus
from app.schemas.answers import AnswerBudget
from app.schemas.common import ErrorInfo, RequestModel, Timestamp

MAX_VERSION = 2**31 - 1  # the store's integer column
MAX_BATCH_RUNS = 10_000  # runs in one batch, whatever MAX_BATCH_RUNS (the setting) allows

Inputs = dict[str, Any]


class BatchRun(RequestModel):
    """One run of a batch."""

    inputs: Inputs = Field(default_factory=dict, description="the flow's inputs by name")
    priority: int = Field(0, ge=MIN_PRIORITY, le=MAX_PRIORITY)


class StartRequest(RequestModel):
    """Start a run in the background."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"inputs": {"user_id": 1}}]})

    inputs: Inputs = Field(default_factory=dict, description="the flow's inputs by name")
    version: int | None = Field(
        None, ge=1, le=MAX_VERSION, description="run this version; default the latest"
    )
    priority: int = Field(
        0,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description="queued runs are claimed highest priority first, then oldest first",
    )
    runs: list[BatchRun] | None = Field(
        None,
        min_length=1,
        max_length=MAX_BATCH_RUNS,
        description="a batch: start every run of the list (each with its `inputs` and "
        "`priority`) in one transaction, or none; at most MAX_BATCH_RUNS (a setting)",
    )

    @model_validator(mode="after")
    def _one_form(self) -> StartRequest:
        if self.runs is not None and self.model_fields_set & {"inputs", "priority"}:
            raise ValueError(
                "`runs` starts a batch: give each run its `inputs` and `priority` there"
            )
        return self


class ForkRequest(RequestModel):
    """Fork a finished run from one of its steps."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"from_step": "charge", "outputs": {"fetch_user": {"email": "a@b.c"}}}]
        }
    )

    from_step: str = Field(
        max_length=128, description="the step to run again, with every step that depends on it"
    )
    inputs: Inputs | None = Field(None, description="replace the source run's inputs")
    outputs: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="`{step_id: {output: value}}` laid over the recorded outputs of kept steps",
    )
    version: int | None = Field(
        None, ge=1, le=MAX_VERSION, description="the flow's version; default the source run's"
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
    def of(cls, run: RunRecord, budget: AnswerBudget) -> ExecutionResult:
        return cls(
            run_id=run.run_id,
            flow=run.flow,
            version=run.version,
            status=run.status,
            outputs=budget.fit(run.outputs, run_value_href(run.run_id, "outputs")),
            error=ErrorInfo.of(run.error),
            duration_ms=milliseconds(run.duration_ms),
        )


class RunStarted(BaseModel):
    run_id: str
    status: RunStatus

    @classmethod
    def of(cls, run: RunRecord) -> RunStarted:
        return cls(run_id=run.run_id, status=run.status)


class SignalSent(BaseModel):
    run_id: str
    name: str
    sent_at: Timestamp

    @classmethod
    def of(cls, sent: SentSignal) -> SignalSent:
        return cls(run_id=sent.run_id, name=sent.name, sent_at=sent.sent_at)


class RunsStarted(BaseModel):
    runs: list[RunStarted] = Field(description="the runs, in the order asked")


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
    def of(cls, run_id: str, step: StepRecord, budget: AnswerBudget) -> StepDetail:
        return cls(
            step_id=step.step_id,
            task_index=step.task_index,
            status=step.status,
            attempts=step.attempts,
            outputs=budget.fit(step.outputs, step_outputs_href(run_id, step)),
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
    forked_from: str | None = Field(None, description="the run this one was forked from")
    parent_run_id: str | None = Field(
        None, description="a child run's parent: the run whose `flow` step started it"
    )
    parent_step_id: str | None = Field(None, description="the parent's step that started it")
    priority: int = Field(0, description="higher is claimed first")
    concurrency_key: str | None = Field(
        None,
        description="the key of the flow's `concurrency:` limit for this run (its rendered "
        "`key`, or the flow's name); null when the flow declares none",
    )
    concurrency_limit: int | None = Field(
        None, description="how many runs of `concurrency_key` may run at once"
    )

    @classmethod
    def of(cls, run: RunRecord, budget: AnswerBudget) -> RunSummary:
        return cls(**_run_fields(run, budget))


class ChildRunItem(BaseModel):
    run_id: str
    step_id: str = Field(description="the step of this run that started it")
    status: RunStatus


class RunDetail(RunSummary):
    steps: list[StepDetail] = Field(description="every step of the run, pending ones too")
    children: list[ChildRunItem] = Field(
        default_factory=list, description="the child runs its `flow` steps started, oldest first"
    )

    @classmethod
    def of(cls, run: RunRecord, budget: AnswerBudget) -> RunDetail:
        fields = _run_fields(run, budget)  # the run's own values first, then its steps'
        steps = [StepDetail.of(run.run_id, step, budget) for step in run.steps]
        children = [
            ChildRunItem(run_id=child.run_id, step_id=child.step_id, status=child.status)
            for child in run.children
        ]
        return cls(**fields, steps=steps, children=children)


class RunList(BaseModel):
    items: list[RunSummary] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")

    @classmethod
    def of(cls, page: RunPage, budget: AnswerBudget) -> RunList:
        items = [RunSummary.of(run, budget) for run in page.items]
        return cls(items=items, next_cursor=page.next_cursor)


def milliseconds(duration: float | None) -> float | None:
    """To the microsecond the store keeps: `87.209`, not `87.20899999999999`."""
    return None if duration is None else round(duration, 3)


def run_value_href(run_id: str, name: str) -> str:
    """Where a run's `inputs` or `outputs` are answered whole."""
    return f"/runs/{run_id}/{name}"


def step_outputs_href(run_id: str, step: StepRecord) -> str:
    """Where a task's outputs are answered whole."""
    return f"/runs/{run_id}/steps/{step.step_id}/outputs?task_index={step.task_index}"


def _run_fields(run: RunRecord, budget: AnswerBudget) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "flow": run.flow,
        "version": run.version,
        "status": run.status,
        "inputs": budget.fit(run.inputs, run_value_href(run.run_id, "inputs")),
        "outputs": budget.fit(run.outputs, run_value_href(run.run_id, "outputs")),
        "error": ErrorInfo.of(run.error),
        "remaining_steps": run.remaining_steps,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "created_by": run.created_by,
        "forked_from": run.forked_from,
        "parent_run_id": run.parent_run_id,
        "parent_step_id": run.parent_step_id,
        "priority": run.priority,
        "concurrency_key": run.concurrency_key,
        "concurrency_limit": run.concurrency_limit,
    }


class LogLineItem(BaseModel):
    at: Timestamp
    level: str
    message: str


class AttemptLogItem(BaseModel):
    attempt: int
    lines: list[LogLineItem]
    truncated: bool = Field(description="MAX_TASK_LOG_BYTES cut this attempt's lines short")


class TaskLogs(BaseModel):
    """What one task (a step, or one element of its fan-out) logged, attempt by attempt."""

    run_id: str
    step_id: str
    task_index: int
    attempts: list[AttemptLogItem]

    @classmethod
    def of(cls, run_id: str, step_id: str, task_index: int, logs: list[AttemptLog]) -> TaskLogs:
        return cls(
            run_id=run_id,
            step_id=step_id,
            task_index=task_index,
            attempts=[
                AttemptLogItem(
                    attempt=log.attempt,
                    lines=[
                        LogLineItem(at=line.at, level=line.level, message=line.message)
                        for line in log.lines
                    ],
                    truncated=log.truncated,
                )
                for log in logs
            ],
        )


class ValueChange(BaseModel):
    a: Any = Field(description="the value in the first run (null: none)")
    b: Any = Field(description="the value in the second run (null: none)")


class StepComparison(BaseModel):
    step_id: str
    task_index: int
    same: bool
    differences: dict[str, ValueChange] = Field(
        description="by field (status, outputs, error, attempts): only those that differ"
    )

    @classmethod
    def of(cls, diff: RunDiff, step: StepDiff, budget: AnswerBudget) -> StepComparison:
        differences = {}
        for name, change in step.differences.items():
            a, b = change.a, change.b
            if name == "outputs":
                task = f"/steps/{step.step_id}/outputs?task_index={step.task_index}"
                a = budget.fit(a, f"/runs/{diff.a.run_id}{task}")
                b = budget.fit(b, f"/runs/{diff.b.run_id}{task}")
            differences[name] = ValueChange(a=a, b=b)
        return cls(
            step_id=step.step_id,
            task_index=step.task_index,
            same=step.same,
            differences=differences,
        )


class RunComparison(BaseModel):
    a: str = Field(description="the first run's id")
    b: str = Field(description="the second run's id")
    same: bool = Field(description="the inputs and every step agree")
    inputs: ValueChange | None = Field(description="the runs' inputs; null when the same")
    steps: list[StepComparison] = Field(
        description="every task of either run: the first run's in order, then the second's"
    )

    @classmethod
    def of(cls, diff: RunDiff, budget: AnswerBudget) -> RunComparison:
        inputs = None
        if diff.inputs is not None:
            inputs = ValueChange(
                a=budget.fit(diff.inputs.a, run_value_href(diff.a.run_id, "inputs")),
                b=budget.fit(diff.inputs.b, run_value_href(diff.b.run_id, "inputs")),
            )
        steps = [StepComparison.of(diff, step, budget) for step in diff.steps]
        return cls(a=diff.a.run_id, b=diff.b.run_id, same=diff.same, inputs=inputs, steps=steps)

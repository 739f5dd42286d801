"""Runs: start one of a stored flow (and wait for it, or not), read, list, cancel, retry.

Answers carry values within MAX_ANSWER_BYTES (`app/schemas/answers.py`); a value left out is
a marker whose `href` is one of the routes at the end, which answer a value whole.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.openapi.models import Example

from app.api.body import JSON_TYPE, YAML_TYPE, JsonBodyRoute
from app.api.deps import (
    FlowName,
    IdempotencyKey,
    RunId,
    RunsDep,
    RunsReader,
    RunsWriter,
    SettingsDep,
    TraceParent,
)
from app.domain.fixtures import fixture_yaml
from app.domain.runs import SIGNAL_NAME_PATTERN, RunStatus
from app.dsl.fields import FLOW_NAME, IDENTIFIER
from app.errors import RequestError
from app.schemas.answers import AnswerBudget, json_bytes
from app.schemas.common import error_responses
from app.schemas.runs import (
    ExecuteRequest,
    ExecutionResult,
    ForkRequest,
    RunComparison,
    RunDetail,
    RunList,
    RunsStarted,
    RunStarted,
    SignalSent,
    StartRequest,
    TaskLogs,
)
from app.services.runs import RunToStart

OtherRunId = Annotated[uuid.UUID, Path(description="the id of the run to compare with")]

router = APIRouter(tags=["runs"], route_class=JsonBodyRoute)

EXAMPLES: dict[str, Example] = {
    "tutorial": {"summary": "The tutorial's request", "value": {"inputs": {"user_id": 1}}},
    "no wait": {"summary": "Answer 202 at once", "value": {"inputs": {"user_id": 1}, "wait": 0}},
}
STILL_RUNNING = "The wait ran out; the run goes on (see Location)"
REPEATED = "An earlier request with this Idempotency-Key made the run"


def run_location(run_id: str) -> str:
    return f"/runs/{run_id}"


@router.post(
    "/flows/{name}/execute",
    summary="Run a flow and wait for its result",
    description="200 when the run finished within `wait` seconds (a failed run too, with "
    "`status: failed` and its `error`); 202 with `Location` when it is still running. Inputs "
    "are checked before any run is created (422). A run of a flow with a `concurrency:` limit "
    "is queued (with `priority`) and waited for the same way: it starts when its key has a "
    "free slot.",
    response_model=ExecutionResult,
    responses=error_responses(401, 403, 404, 413, 415, 422, 429, also={202: STILL_RUNNING}),
)
async def execute_flow(
    caller: RunsWriter,
    name: FlowName,
    runs: RunsDep,
    settings: SettingsDep,
    response: Response,
    request: Annotated[
        ExecuteRequest, Body(default_factory=ExecuteRequest, openapi_examples=EXAMPLES)
    ],
    idempotency_key: IdempotencyKey = None,
    traceparent: TraceParent = None,
) -> ExecutionResult:
    wait = settings.execute_wait_seconds if request.wait is None else request.wait
    started = await runs.execute(
        caller,
        name,
        request.inputs,
        version=request.version,
        priority=request.priority,
        wait=min(wait, settings.max_wait_seconds),
        idempotency_key=idempotency_key,
        traceparent=traceparent,
    )
    if not started.run.finished:
        response.status_code = 202
        response.headers["Location"] = run_location(started.run.run_id)
    return ExecutionResult.of(started.run, AnswerBudget.for_answer(settings))


@router.post(
    "/flows/{name}/runs",
    summary="Start a run (or a batch of runs) in the background",
    description="202 with `Location: /runs/{id}`; the embedded worker (or any worker) runs it. "
    "With `runs` (a list of `{inputs, priority}`, at most MAX_BATCH_RUNS), starts every run "
    "of the list in one transaction, or none (a problem points at `body.runs[i]`), and "
    "answers their ids in order.",
    status_code=202,
    response_model=RunStarted | RunsStarted,
    responses=error_responses(401, 403, 404, 413, 415, 422, 429, also={200: REPEATED}),
)
async def start_run(
    caller: RunsWriter,
    name: FlowName,
    runs: RunsDep,
    response: Response,
    request: Annotated[
        StartRequest,
        Body(
            default_factory=StartRequest,
            openapi_examples={
                "tutorial": EXAMPLES["tutorial"],
                "batch": {
                    "summary": "Two runs in one transaction",
                    "value": {"runs": [{"inputs": {"user_id": 1}}, {"inputs": {"user_id": 2}}]},
                },
            },
        ),
    ],
    idempotency_key: IdempotencyKey = None,
    traceparent: TraceParent = None,
) -> RunStarted | RunsStarted:
    if request.runs is not None:
        if idempotency_key is not None:
            raise RequestError(
                "an Idempotency-Key repeats one run: a batch takes none",
                loc=("header", "idempotency-key"),
            )
        batch = [RunToStart(run.inputs, run.priority) for run in request.runs]
        started = await runs.start_all(
            caller, name, batch, version=request.version, traceparent=traceparent
        )
        return RunsStarted(runs=[RunStarted.of(run) for run in started])
    one = await runs.start(
        caller,
        name,
        request.inputs,
        version=request.version,
        idempotency_key=idempotency_key,
        traceparent=traceparent,
        priority=request.priority,
    )
    response.status_code = 202 if one.created else 200
    response.headers["Location"] = run_location(one.run.run_id)
    return RunStarted.of(one.run)


@router.get(
    "/runs",
    summary="List the runs of the flows the caller may see, newest first",
    response_model=RunList,
    responses=error_responses(401, 403, 422),
)
async def list_runs(
    caller: RunsReader,
    runs: RunsDep,
    settings: SettingsDep,
    flow: Annotated[str | None, Query(pattern=FLOW_NAME.pattern, description="flow name")] = None,
    status: Annotated[RunStatus | None, Query(description="only runs in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="runs per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page")
    ] = None,
    parent: Annotated[
        uuid.UUID | None, Query(description="only the child runs this run's steps started")
    ] = None,
) -> RunList:
    budget = AnswerBudget.for_listing(settings, limit)
    page = await runs.list_runs(
        caller,
        flow=flow,
        status=status,
        limit=limit,
        cursor=cursor,
        value_limit=budget.store_cut,
        parent=None if parent is None else str(parent),
    )
    return RunList.of(page, budget)


@router.get(
    "/runs/{run_id}",
    summary="Read a run with every step",
    response_model=RunDetail,
    responses=error_responses(401, 403, 404, 422),
)
async def get_run(
    caller: RunsReader, run_id: RunId, runs: RunsDep, settings: SettingsDep
) -> RunDetail:
    return RunDetail.of(await runs.read(caller, str(run_id)), AnswerBudget.for_answer(settings))


@router.post(
    "/runs/{run_id}/cancel",
    summary="Cancel a queued or running run",
    response_model=RunDetail,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def cancel_run(
    caller: RunsWriter, run_id: RunId, runs: RunsDep, settings: SettingsDep
) -> RunDetail:
    cancelled = await runs.cancel(caller, str(run_id))
    return RunDetail.of(cancelled, AnswerBudget.for_answer(settings))


SignalName = Annotated[
    str,
    Path(
        pattern=f"^{SIGNAL_NAME_PATTERN}$",
        description="the name a `wait_for` step waits for",
        examples=["approval"],
    ),
]


@router.post(
    "/runs/{run_id}/signals/{name}",
    summary="Send a run a signal",
    description="The JSON body is the payload (none: null). A `wait_for` step waiting for "
    "`name` completes with `{payload, timed_out: false}`; a signal sent before the step is "
    "reached is kept and taken when it is, once. 202; 404 for an unknown run, 409 once it "
    "has ended.",
    status_code=202,
    response_model=SignalSent,
    responses=error_responses(401, 403, 404, 409, 413, 415, 422),
)
async def send_signal(
    caller: RunsWriter,
    run_id: RunId,
    name: SignalName,
    runs: RunsDep,
    payload: Annotated[
        Any,
        Body(openapi_examples={"approval": {"summary": "a yes", "value": {"approved": True}}}),
    ] = None,
) -> SignalSent:
    return SignalSent.of(await runs.signal(caller, str(run_id), name, payload))


@router.post(
    "/runs/{run_id}/retry",
    summary="Resume a failed or cancelled run from its unfinished steps",
    description="Completed steps keep their results and are not run again. 202 with "
    "`Location`; 409 unless the run failed or was cancelled.",
    status_code=202,
    response_model=RunDetail,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def retry_run(
    caller: RunsWriter, run_id: RunId, runs: RunsDep, settings: SettingsDep, response: Response
) -> RunDetail:
    run = await runs.retry(caller, str(run_id))
    response.headers["Location"] = run_location(run.run_id)
    return RunDetail.of(run, AnswerBudget.for_answer(settings))


@router.post(
    "/runs/{run_id}/fork",
    summary="Start a new run from a finished run, from one of its steps",
    description="The new run keeps the source run's completed steps that do not depend on "
    "`from_step` (their recorded outputs, patched by `outputs`; they are not run again) and "
    "runs the rest. `inputs` replace the source's; `version` default the source's. 202 with "
    "`Location`; 409 while the source run is queued or running; 422 for a `from_step` that "
    "is not a step of the version, or `outputs` of a step that is not kept.",
    status_code=202,
    response_model=RunStarted,
    responses=error_responses(401, 403, 404, 409, 413, 415, 422, 429),
)
async def fork_run(
    caller: RunsWriter,
    run_id: RunId,
    runs: RunsDep,
    response: Response,
    request: ForkRequest,
    traceparent: TraceParent = None,
) -> RunStarted:
    started = await runs.fork(
        caller,
        str(run_id),
        request.from_step,
        inputs=request.inputs,
        outputs=request.outputs,
        version=request.version,
        traceparent=traceparent,
    )
    response.headers["Location"] = run_location(started.run.run_id)
    return RunStarted.of(started.run)


@router.get(
    "/runs/{run_id}/diff/{other_id}",
    summary="What differs between two runs, step by step",
    description="Each task of either run with `same` and the fields that differ (status, "
    "outputs, error, attempts), and the runs' inputs when they differ.",
    response_model=RunComparison,
    responses=error_responses(401, 403, 404, 422),
)
async def diff_runs(
    caller: RunsReader, run_id: RunId, other_id: OtherRunId, runs: RunsDep, settings: SettingsDep
) -> RunComparison:
    diff = await runs.diff(caller, str(run_id), str(other_id))
    return RunComparison.of(diff, AnswerBudget.for_answer(settings))


FIXTURE_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The fixture: YAML (`application/yaml`), or JSON with `?format=json`",
        # One document in either notation: {flow, inputs, stubs, expect}.
        "content": {
            YAML_TYPE: {"schema": {"type": "object"}},
            JSON_TYPE: {"schema": {"type": "object"}},
        },
    }
}


@router.get(
    "/runs/{run_id}/fixture",
    summary="A finished run as a test fixture",
    description='The run as a fixture for `python -m app test` (README, "Testing flows"): '
    "`flow` is the definition as registered, inline, so the fixture replays offline; "
    "`inputs` the run's; `stubs` the recorded outputs of each `stub` step (none by default: "
    "every step runs again); `expect` the run's outcome, `{outputs: ...}` or "
    "`{failed: {step: ...}}`. 409 unless the run completed or failed; 422 for a `stub` step "
    "that did not complete.",
    response_class=Response,
    responses={**FIXTURE_ANSWER, **error_responses(401, 403, 404, 409, 422)},
)
async def get_run_fixture(
    caller: RunsReader,
    run_id: RunId,
    runs: RunsDep,
    stub: Annotated[
        tuple[str, ...],
        Query(
            max_length=1000,
            description="a step whose recorded outputs the fixture gives (repeat for more)",
        ),
    ] = (),
    format: Annotated[
        Literal["yaml", "json"], Query(description="`json` for a JSON answer")
    ] = "yaml",
) -> Response:
    fixture = await runs.fixture(caller, str(run_id), stub)
    if format == "json":
        return Response(json_bytes(fixture.as_document()), media_type=JSON_TYPE)
    return Response(fixture_yaml(fixture), media_type=YAML_TYPE)


# Values whole: where the markers of values left out of an answer point.

StepId = Annotated[
    str, Path(pattern=IDENTIFIER.pattern, max_length=128, description="the step's id")
]

WHOLE_VALUE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The value, whole (JSON; null when there is none)",
        "content": {"application/json": {"schema": {}}},
    }
}


@router.get(
    "/runs/{run_id}/inputs",
    summary="A run's inputs, whole",
    response_class=Response,
    responses={**WHOLE_VALUE, **error_responses(401, 403, 404, 422)},
)
async def get_run_inputs(caller: RunsReader, run_id: RunId, runs: RunsDep) -> Response:
    run = await runs.read(caller, str(run_id), with_steps=False)
    return Response(json_bytes(run.inputs), media_type=JSON_TYPE)


@router.get(
    "/runs/{run_id}/outputs",
    summary="A run's outputs, whole",
    response_class=Response,
    responses={**WHOLE_VALUE, **error_responses(401, 403, 404, 422)},
)
async def get_run_outputs(caller: RunsReader, run_id: RunId, runs: RunsDep) -> Response:
    run = await runs.read(caller, str(run_id), with_steps=False)
    return Response(json_bytes(run.outputs), media_type=JSON_TYPE)


@router.get(
    "/runs/{run_id}/steps/{step_id}/outputs",
    summary="One task's outputs, whole",
    description="A step's outputs (`task_index` 0), or one element's of a fan-out.",
    response_class=Response,
    responses={**WHOLE_VALUE, **error_responses(401, 403, 404, 422)},
)
async def get_step_outputs(
    caller: RunsReader,
    run_id: RunId,
    step_id: StepId,
    runs: RunsDep,
    task_index: Annotated[int, Query(ge=0, le=2**31 - 1, description="the element")] = 0,
) -> Response:
    task = await runs.task(caller, str(run_id), step_id, task_index)
    return Response(json_bytes(task.outputs), media_type=JSON_TYPE)


@router.get(
    "/runs/{run_id}/steps/{step_id}/logs",
    summary="What one task logged, attempt by attempt",
    description="The lines the task logged (`context.logger`, INFO and above) in each attempt, "
    "up to MAX_TASK_LOG_BYTES per attempt (`truncated` past it). A step's task is "
    "`task_index` 0; a fan-out's elements are 0, 1, ...",
    response_model=TaskLogs,
    responses=error_responses(401, 403, 404, 422),
)
async def get_step_logs(
    caller: RunsReader,
    run_id: RunId,
    step_id: StepId,
    runs: RunsDep,
    task_index: Annotated[int, Query(ge=0, le=2**31 - 1, description="the element")] = 0,
    attempt: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="only this attempt")
    ] = None,
) -> TaskLogs:
    logs = await runs.task_logs(caller, str(run_id), step_id, task_index, attempt)
    return TaskLogs.of(str(run_id), step_id, task_index, logs)

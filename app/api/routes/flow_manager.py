"""`POST /flow/run`: run a condition graph (the Flow Manager seed's endpoint)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from app.api.body import JsonBodyRoute
from app.api.deps import FlowManagerDep, GraphRunner
from app.schemas.common import error_responses
from app.schemas.flow_manager import SAMPLE_REQUEST, GraphRunRequest, GraphRunResult

router = APIRouter(tags=["flow manager"], route_class=JsonBodyRoute)


@router.post(
    "/flow/run",
    summary="Run a condition graph",
    description="The graph is registered under its `id` (a new version only when it changed) "
    "and run to its end; the answer lists the executed tasks and the last one's outputs. A run "
    "whose last executed task failed ends `failed`.",
    response_model=GraphRunResult,
    responses=error_responses(401, 403, 413, 415, 422, 429),
)
async def run_graph(
    caller: GraphRunner,
    request: Annotated[
        GraphRunRequest,
        Body(
            openapi_examples={"sample": {"summary": "The seed's sample", "value": SAMPLE_REQUEST}}
        ),
    ],
    flow_manager: FlowManagerDep,
) -> GraphRunResult:
    return GraphRunResult.of(await flow_manager.run(caller, request.flow, request.inputs))

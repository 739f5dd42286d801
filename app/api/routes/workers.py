"""`GET /workers`: the processes that execute runs, and their last heartbeat."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import Admin, WorkersDep
from app.schemas.common import error_responses
from app.schemas.workers import WorkerItem

router = APIRouter(tags=["workers"])


@router.get(
    "/workers",
    summary="Processes that execute runs (API processes and standalone workers) with their "
    "last heartbeat, most recent first",
    description="Admins only: host names and process ids are the operator's business.",
    response_model=list[WorkerItem],
    responses=error_responses(401, 403),
)
async def list_workers(_: Admin, workers: WorkersDep) -> list[WorkerItem]:
    return [WorkerItem.of(worker) for worker in await workers.list_workers()]

"""`GET /workers`: the processes that execute runs, and their last heartbeat."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import WorkersDep
from app.schemas.workers import WorkerItem

router = APIRouter(tags=["workers"])


@router.get(
    "/workers",
    summary="Processes that execute runs (API processes and standalone workers) with their "
    "last heartbeat, most recent first",
    response_model=list[WorkerItem],
)
async def list_workers(workers: WorkersDep) -> list[WorkerItem]:
    return [WorkerItem.of(worker) for worker in await workers.list_workers()]

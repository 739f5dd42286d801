"""`GET /audit`: every change to users, keys, shares and flows' ownership (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import Admin, AuditDep
from app.schemas.access import AuditList
from app.schemas.common import error_responses

router = APIRouter(tags=["audit"])


@router.get(
    "/audit",
    summary="The audit log, newest first",
    response_model=AuditList,
    responses=error_responses(401, 403, 422),
)
async def list_audit(
    _: Admin,
    audit: AuditDep,
    limit: Annotated[int, Query(ge=1, le=200, description="entries per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=32, description="`next_cursor` of the previous page")
    ] = None,
) -> AuditList:
    return AuditList.of(await audit.page(limit=limit, cursor=cursor))

"""`GET /metrics`: the Prometheus text of DESIGN.md section 8 (`app/services/observability`).

Who may scrape it: `scraper` (app/api/security.py) — an admin by default, a bearer token of
its own with METRICS_TOKEN, anyone with METRICS_PUBLIC=true.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from app.api.deps import ServicesDep
from app.api.security import scraper
from app.schemas.common import error_responses

router = APIRouter(tags=["system"])

PROMETHEUS_TEXT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/metrics",
    summary="Metrics, in Prometheus text format",
    response_class=Response,
    responses={**PROMETHEUS_TEXT, **error_responses(401, 403)},
    dependencies=[Depends(scraper)],
)
async def get_metrics(services: ServicesDep) -> Response:
    scrape = await services.metrics.scrape()
    return Response(scrape.body, media_type=scrape.content_type)

"""Operational routes: liveness, readiness (the store answers) and the connection plugins."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import PUBLIC, AnyCaller, ServicesDep
from app.api.errors import error_answer
from app.connections.manager import available_plugins
from app.schemas.common import error_responses
from app.schemas.system import ConnectionPlugin, Health, Readiness

router = APIRouter(tags=["system"])


@router.get(
    "/health",
    summary="Liveness: the process answers",
    response_model=Health,
    dependencies=[PUBLIC],
)
async def get_health() -> Health:
    return Health()


@router.get(
    "/ready",
    summary="Readiness: the store answers a trivial query",
    response_model=Readiness,
    responses=error_responses(503),
    dependencies=[PUBLIC],
)
async def get_readiness(services: ServicesDep) -> Readiness | JSONResponse:
    if await services.store_reachable():
        return Readiness()
    return error_answer(503, "the store is unreachable")


@router.get(
    "/connections",
    summary="Connection plugins and whether their drivers are installed",
    response_model=list[ConnectionPlugin],
    responses=error_responses(401),
)
async def list_connections(_: AnyCaller) -> list[ConnectionPlugin]:
    return [ConnectionPlugin.of(plugin) for plugin in available_plugins()]

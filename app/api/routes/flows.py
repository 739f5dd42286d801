"""`/flows`: register, validate, read and delete definitions (runs start in `runs.py`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import DefinitionDep, FlowName, FlowsDep, Version
from app.schemas.common import error_responses
from app.schemas.flows import (
    DEFINITION_BODY,
    FlowDetail,
    FlowListItem,
    Registered,
    ValidationResult,
    VersionItem,
)

router = APIRouter(prefix="/flows", tags=["flows"])


@router.post(
    "",
    summary="Register a flow definition",
    description="A new version when the body differs from the current one (201); the current "
    "version when it is identical (200). YAML or JSON, by Content-Type.",
    status_code=201,
    response_model=Registered,
    responses=error_responses(413, 415, 422, also={200: "Identical to the current version"}),
    openapi_extra=DEFINITION_BODY,
)
async def register_flow(
    definition: DefinitionDep, flows: FlowsDep, response: Response
) -> Registered:
    registration = await flows.register(definition.source, definition.format)
    response.status_code = 201 if registration.created else 200
    return Registered.of(registration.flow)


@router.post(
    "/validate",
    summary="Check a definition without saving it",
    description="Its steps and the edges between them, or 422 with every problem.",
    response_model=ValidationResult,
    responses=error_responses(413, 415, 422),
    openapi_extra=DEFINITION_BODY,
)
async def validate_flow(definition: DefinitionDep, flows: FlowsDep) -> ValidationResult:
    return ValidationResult.of(await flows.validate(definition.source, definition.format))


@router.get("", summary="List flows with their latest version", response_model=list[FlowListItem])
async def list_flows(flows: FlowsDep) -> list[FlowListItem]:
    return [FlowListItem.of(flow) for flow in await flows.list_flows()]


@router.get(
    "/{name}",
    summary="Read a flow's latest version",
    response_model=FlowDetail,
    responses=error_responses(404, 422),
)
async def get_flow(name: FlowName, flows: FlowsDep) -> FlowDetail:
    return FlowDetail.of(await flows.get(name))


@router.put(
    "/{name}",
    summary="Register a definition under this name",
    description="As POST /flows; the definition must carry the name of the path (else 422).",
    status_code=201,
    response_model=Registered,
    responses=error_responses(413, 415, 422, also={200: "Identical to the current version"}),
    openapi_extra=DEFINITION_BODY,
)
async def put_flow(
    name: FlowName, definition: DefinitionDep, flows: FlowsDep, response: Response
) -> Registered:
    registration = await flows.register(definition.source, definition.format, name=name)
    response.status_code = 201 if registration.created else 200
    return Registered.of(registration.flow)


@router.delete(
    "/{name}",
    summary="Delete a flow, its versions and its runs",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 422),
)
async def delete_flow(name: FlowName, flows: FlowsDep) -> None:
    await flows.delete(name)


@router.get(
    "/{name}/versions",
    summary="List a flow's versions, oldest first",
    response_model=list[VersionItem],
    responses=error_responses(404, 422),
)
async def list_versions(name: FlowName, flows: FlowsDep) -> list[VersionItem]:
    return [VersionItem.of(flow) for flow in await flows.versions(name)]


@router.get(
    "/{name}/versions/{version}",
    summary="Read one version of a flow",
    response_model=FlowDetail,
    responses=error_responses(404, 422),
)
async def get_version(name: FlowName, version: Version, flows: FlowsDep) -> FlowDetail:
    return FlowDetail.of(await flows.get(name, version))

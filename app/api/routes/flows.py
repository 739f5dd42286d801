"""`/flows`: register, validate, read, change, share and delete flows (runs start in
`runs.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from app.api.body import JSON_TYPE, JsonBodyRoute
from app.api.deps import (
    DefinitionDep,
    FlowName,
    FlowsDep,
    FlowsReader,
    FlowsWriter,
    Username,
    Version,
)
from app.domain.access import Permission
from app.schemas.access import FlowPatch, ShareItem, SharePut
from app.schemas.common import error_responses
from app.schemas.flows import (
    DEFINITION_BODY,
    FlowDetail,
    FlowListItem,
    Registered,
    ValidationResult,
    VersionItem,
)
from app.services.flows import MAX_CHANGE_NOTES, FlowChange

router = APIRouter(prefix="/flows", tags=["flows"])
json_router = APIRouter(prefix="/flows", tags=["flows"], route_class=JsonBodyRoute)

NOTES = "why this version: recorded with it (or send the X-Change-Notes header)"
ChangeNotes = Annotated[
    str | None, Query(alias="change_notes", max_length=MAX_CHANGE_NOTES, description=NOTES)
]
ChangeNotesHeader = Annotated[
    str | None, Header(alias="X-Change-Notes", max_length=MAX_CHANGE_NOTES, description=NOTES)
]
WRITE_ERRORS = (401, 403, 409, 413, 415, 422, 429)


@router.post(
    "",
    summary="Register a flow definition",
    description="A new version when the body differs from the current one (201); the current "
    "version when it is identical (200). YAML or JSON, by Content-Type. A new name makes a "
    "new flow, owned by the caller; a new version needs the `edit` permission.",
    status_code=201,
    response_model=Registered,
    responses=error_responses(*WRITE_ERRORS, also={200: "Identical to the current version"}),
    openapi_extra=DEFINITION_BODY,
)
async def register_flow(
    caller: FlowsWriter,
    definition: DefinitionDep,
    flows: FlowsDep,
    response: Response,
    change_notes: ChangeNotes = None,
    change_notes_header: ChangeNotesHeader = None,
) -> Registered:
    registration = await flows.register(
        caller,
        definition.source,
        definition.format,
        change_notes=change_notes or change_notes_header,
    )
    response.status_code = 201 if registration.created else 200
    return Registered.of(registration.flow)


@router.post(
    "/validate",
    summary="Check a definition without saving it",
    description="Its steps and the edges between them, or 422 with every problem.",
    response_model=ValidationResult,
    responses=error_responses(401, 403, 413, 415, 422),
    openapi_extra=DEFINITION_BODY,
)
async def validate_flow(_: FlowsReader, definition: DefinitionDep, flows: FlowsDep) -> Response:
    report = await flows.validate(definition.source, definition.format)
    return Response(ValidationResult.json_of(report), media_type=JSON_TYPE)


@router.get(
    "",
    summary="List the flows the caller may see, with their latest version",
    response_model=list[FlowListItem],
    responses=error_responses(401, 403),
)
async def list_flows(caller: FlowsReader, flows: FlowsDep) -> list[FlowListItem]:
    return [FlowListItem.of(flow) for flow in await flows.list_flows(caller)]


@router.get(
    "/{name}",
    summary="Read a flow's latest version",
    response_model=FlowDetail,
    responses=error_responses(401, 403, 404, 422),
)
async def get_flow(caller: FlowsReader, name: FlowName, flows: FlowsDep) -> FlowDetail:
    return FlowDetail.of(await flows.get(caller, name))


@router.put(
    "/{name}",
    summary="Register a definition under this name",
    description="As POST /flows; the definition must carry the name of the path (else 422).",
    status_code=201,
    response_model=Registered,
    responses=error_responses(*WRITE_ERRORS, also={200: "Identical to the current version"}),
    openapi_extra=DEFINITION_BODY,
)
async def put_flow(
    caller: FlowsWriter,
    name: FlowName,
    definition: DefinitionDep,
    flows: FlowsDep,
    response: Response,
    change_notes: ChangeNotes = None,
    change_notes_header: ChangeNotesHeader = None,
) -> Registered:
    registration = await flows.register(
        caller,
        definition.source,
        definition.format,
        name=name,
        change_notes=change_notes or change_notes_header,
    )
    response.status_code = 201 if registration.created else 200
    return Registered.of(registration.flow)


@json_router.patch(
    "/{name}",
    summary="Make a flow public or private, describe it, or give it to another user",
    description="`description` needs the `edit` permission; `public` and `owner` need `admin` "
    "(the owner has it).",
    response_model=FlowDetail,
    responses=error_responses(401, 403, 404, 415, 422),
)
async def change_flow(
    caller: FlowsWriter, name: FlowName, change: FlowPatch, flows: FlowsDep
) -> FlowDetail:
    updated = await flows.change(
        caller,
        name,
        FlowChange(public=change.public, description=change.description, owner=change.owner),
    )
    return FlowDetail.of(updated)


@router.delete(
    "/{name}",
    summary="Delete a flow, its versions and its runs",
    description="Needs the `admin` permission on the flow (its owner has it).",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
)
async def delete_flow(caller: FlowsWriter, name: FlowName, flows: FlowsDep) -> None:
    await flows.delete(caller, name)


@router.get(
    "/{name}/versions",
    summary="List a flow's versions, oldest first",
    response_model=list[VersionItem],
    responses=error_responses(401, 403, 404, 422),
)
async def list_versions(caller: FlowsReader, name: FlowName, flows: FlowsDep) -> list[VersionItem]:
    return [VersionItem.of(flow) for flow in await flows.versions(caller, name)]


@router.get(
    "/{name}/versions/{version}",
    summary="Read one version of a flow",
    response_model=FlowDetail,
    responses=error_responses(401, 403, 404, 422),
)
async def get_version(
    caller: FlowsReader, name: FlowName, version: Version, flows: FlowsDep
) -> FlowDetail:
    return FlowDetail.of(await flows.get(caller, name, version))


@router.get(
    "/{name}/shares",
    summary="Who the flow is shared with, and with which permission",
    description="Needs the `admin` permission on the flow (its owner has it).",
    response_model=list[ShareItem],
    responses=error_responses(401, 403, 404, 422),
)
async def list_shares(caller: FlowsReader, name: FlowName, flows: FlowsDep) -> list[ShareItem]:
    return [ShareItem.of(share) for share in await flows.shares(caller, name)]


@json_router.put(
    "/{name}/shares/{user}",
    summary="Share a flow with a user, or change the permission it has",
    description="`view` reads the flow and its runs; `run` also starts, cancels and retries "
    "them; `edit` also registers versions; `admin` also shares and deletes the flow. 201 for "
    "a new share, 200 for a changed one.",
    status_code=201,
    response_model=ShareItem,
    responses=error_responses(401, 403, 404, 409, 415, 422, also={200: "The share changed"}),
)
async def put_share(
    caller: FlowsWriter,
    name: FlowName,
    user: Username,
    share: SharePut,
    flows: FlowsDep,
    response: Response,
) -> ShareItem:
    record, created = await flows.share(caller, name, user, Permission.of(share.permission))
    response.status_code = 201 if created else 200
    return ShareItem.of(record)


@router.delete(
    "/{name}/shares/{user}",
    summary="Stop sharing a flow with a user",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
)
async def delete_share(
    caller: FlowsWriter, name: FlowName, user: Username, flows: FlowsDep
) -> None:
    await flows.unshare(caller, name, user)

"""`/keys`: the caller's API keys (an admin's: anyone's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.body import JsonBodyRoute
from app.api.deps import AnyCaller, KeyId, KeysDep
from app.schemas.access import KeyCreate, KeyCreated, KeyItem
from app.schemas.common import error_responses

router = APIRouter(prefix="/keys", tags=["keys"], route_class=JsonBodyRoute)


@router.get(
    "",
    summary="List API keys: the caller's own, or (admins) a user's or everyone's",
    response_model=list[KeyItem],
    responses=error_responses(401, 403, 404, 422),
)
async def list_keys(
    caller: AnyCaller,
    keys: KeysDep,
    user: Annotated[
        str | None, Query(max_length=64, description="a user's name, or `*` for everyone's")
    ] = None,
) -> list[KeyItem]:
    return [KeyItem.of(key) for key in await keys.list_keys(caller, user)]


@router.post(
    "",
    summary="Make an API key",
    description="The key is in the answer, this once: it is stored only as a hash. It has at "
    "most its user's rights, and no more than the credential that makes it.",
    status_code=201,
    response_model=KeyCreated,
    responses=error_responses(401, 403, 404, 409, 415, 422),
)
async def create_key(caller: AnyCaller, request: KeyCreate, keys: KeysDep) -> KeyCreated:
    created = await keys.create(
        caller,
        user=request.user,
        name=request.name,
        scopes=request.scopes,
        expires_at=request.expires_at,
    )
    return KeyCreated.of(created)


@router.delete(
    "/{key_id}",
    summary="Revoke an API key",
    description="It stops working at once, in every process.",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 404, 422),
)
async def revoke_key(caller: AnyCaller, key_id: KeyId, keys: KeysDep) -> None:
    await keys.revoke(caller, key_id)

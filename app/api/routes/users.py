"""`/users` (admins) and `/me`: who may call, and the caller itself."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from app.api.body import JsonBodyRoute
from app.api.deps import Admin, AnyCaller, Username, UsersDep
from app.schemas.access import Me, UserCreate, UserItem
from app.schemas.common import error_responses

router = APIRouter(tags=["users"], route_class=JsonBodyRoute)


@router.get("/me", summary="Who the caller is", response_model=Me, responses=error_responses(401))
async def get_me(caller: AnyCaller) -> Me:
    return Me.of(caller)


@router.get(
    "/me/settings",
    summary="The caller's own settings (a JSON object the dashboard keeps)",
    response_model=dict[str, Any],
    responses=error_responses(401),
)
async def get_my_settings(caller: AnyCaller, users: UsersDep) -> Any:
    return await users.settings(caller)


@router.put(
    "/me/settings",
    summary="Replace the caller's own settings",
    response_model=dict[str, Any],
    responses=error_responses(401, 403, 413, 415, 422),
)
async def put_my_settings(
    caller: AnyCaller, users: UsersDep, settings: Annotated[dict[str, Any], Body()]
) -> Any:
    return await users.save_settings(caller, settings)


@router.get(
    "/users",
    summary="List users",
    response_model=list[UserItem],
    responses=error_responses(401, 403),
)
async def list_users(_: Admin, users: UsersDep) -> list[UserItem]:
    return [UserItem.of(user) for user in await users.list_users()]


@router.post(
    "/users",
    summary="Create a user",
    description="Give them a key with `POST /keys` (`user`), or a password to sign in to the "
    "dashboard. Names are never reused, even after a user is deleted.",
    status_code=201,
    response_model=UserItem,
    responses=error_responses(401, 403, 409, 415, 422),
)
async def create_user(caller: Admin, user: UserCreate, users: UsersDep) -> UserItem:
    created = await users.create(
        caller, user.username, email=user.email, password=user.password, admin=user.admin
    )
    return UserItem.of(created)


@router.delete(
    "/users/{username}",
    summary="Delete a user",
    description="Their keys and sessions stop working and their shares go, at once. A user "
    "who owns flows is refused (409): give the flows to someone else first.",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def delete_user(caller: Admin, username: Username, users: UsersDep) -> None:
    await users.delete(caller, username)

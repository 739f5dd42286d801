"""Users: creating, listing and deleting them, their settings, and the bootstrap admin.

Every change is written to the audit log, and announced (`tx.access_changed()`), in the
transaction that makes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.domain.access import ALL_SCOPES, BOOTSTRAP_ADMIN, USERNAME, Caller
from app.domain.clock import utcnow
from app.domain.records import UserRecord
from app.errors import (
    ConflictError,
    DuplicateError,
    FlowManagerError,
    RequestError,
    UnknownUserError,
)
from app.services.access import AccessChanges
from app.services.passwords import Passwords
from app.store.unit_of_work import Store

MAX_EMAIL_LENGTH = 254


class UserService:
    def __init__(
        self,
        store: Store,
        passwords: Passwords,
        changes: AccessChanges,
    ) -> None:
        self.store = store
        self.passwords = passwords
        self.changes = changes

    async def create(
        self,
        actor: Caller,
        username: str,
        *,
        email: str | None = None,
        password: str | None = None,
        admin: bool = False,
    ) -> UserRecord:
        """A new user; ConflictError when the name (or the email) is taken."""
        _check_username(username)
        if email is not None and not ("@" in email and 3 <= len(email) <= MAX_EMAIL_LENGTH):
            raise RequestError(f"{email!r} is not an email address", loc=("body", "email"))
        password_hash = await self.passwords.hash(password) if password is not None else None
        try:
            async with self.store.write() as tx:
                if await tx.users.name_taken(username):
                    raise ConflictError(f"the name {username!r} is taken (names are never reused)")
                user = await tx.users.add(
                    username=username,
                    email=email,
                    password_hash=password_hash,
                    is_admin=admin,
                    at=utcnow(),
                )
                await tx.audit.record(
                    actor=actor.username,
                    action="user.create",
                    target=username,
                    at=user.created_at,
                    details={"admin": admin, "email": email},
                )
        except DuplicateError:
            raise ConflictError(f"a user named {username!r} or with that email exists") from None
        return user

    async def find(self, username: str) -> UserRecord:
        async with self.store.read() as tx:
            user = await tx.users.find(username)
        if user is None:
            raise UnknownUserError(f"no user is named {username!r}")
        return user

    async def list_users(self) -> Sequence[UserRecord]:
        async with self.store.read() as tx:
            return await tx.users.active()

    async def delete(self, actor: Caller, username: str) -> None:
        """Delete a user: its keys and sessions stop working and its shares go, at once.

        A user who owns flows is not deleted (their flows would have no owner): give them to
        someone else first (`PATCH /flows/{name}` with `owner`). Nor is the caller itself,
        so that an admin is always left.
        """
        if username == actor.username:
            raise ConflictError("you cannot delete yourself; ask another admin")
        async with self.store.write() as tx:
            user = await tx.users.find(username)
            if user is None:
                raise UnknownUserError(f"no user is named {username!r}")
            owned = await tx.flows.owned_names(user.id, limit=6)
            if owned:
                listed = ", ".join(map(repr, owned[:5])) + (", ..." if len(owned) > 5 else "")
                raise ConflictError(
                    f"{username!r} owns flows ({listed}): give them to another user first "
                    '(PATCH /flows/{name} with {"owner": ...}), or delete them'
                )
            now = utcnow()
            await tx.users.mark_deleted(user.id, now)
            await tx.credentials.revoke_all_of(user.id, now)
            await tx.flows.unshare_all_with(user.id)
            await tx.audit.record(
                actor=actor.username, action="user.delete", target=username, at=now
            )
            await tx.access_changed()
        self.changes.forget()

    async def set_password(self, actor: Caller, username: str, password: str) -> None:
        password_hash = await self.passwords.hash(password)
        async with self.store.write() as tx:
            user = await tx.users.find(username)
            if user is None:
                raise UnknownUserError(f"no user is named {username!r}")
            await tx.users.set_password(user.id, password_hash)
            await tx.audit.record(
                actor=actor.username,
                action="user.password",
                target=username,
                at=utcnow(),
            )

    async def settings(self, caller: Caller) -> Any:
        async with self.store.read() as tx:
            return await tx.users.settings_of(caller.user_id)

    async def save_settings(self, caller: Caller, settings: dict[str, Any]) -> Any:
        async with self.store.write() as tx:
            await tx.users.save_settings(caller.user_id, settings, utcnow())
        return settings

    async def local_admin(self) -> Caller:
        """The admin a caller without credentials acts as when authentication is off (and
        whose key ADMIN_API_KEY is): the user `admin`, made if there is none yet, or else the
        oldest admin."""
        try:
            return await self._local_admin()
        except DuplicateError:  # another process made `admin` at the same moment
            return await self._local_admin()

    async def _local_admin(self) -> Caller:
        async with self.store.write() as tx:
            user = await tx.users.find(BOOTSTRAP_ADMIN)
            if user is None and not await tx.users.name_taken(BOOTSTRAP_ADMIN):
                user = await tx.users.add(
                    username=BOOTSTRAP_ADMIN,
                    email=None,
                    password_hash=None,
                    is_admin=True,
                    at=utcnow(),
                )
            if user is None or not user.is_admin:
                admins = [known for known in await tx.users.active() if known.is_admin]
                user = min(admins, key=lambda admin: admin.created_at, default=None)
            if user is None:
                raise FlowManagerError(
                    "no admin is left to act as the local admin: create one with "
                    "`python -m app users create NAME --admin`"
                )
        return Caller(user.id, user.username, is_admin=True, scopes=ALL_SCOPES)


def _check_username(username: str) -> None:
    if not USERNAME.match(username):
        raise RequestError(
            f"{username!r} is not a valid user name: a letter, then up to 63 letters, digits, "
            "'_', '.' or '-'",
            loc=("body", "username"),
        )

"""API keys and dashboard sessions: creating, listing, revoking; signing in and out.

A key has at most its user's rights, and a caller cannot make a key with more than its own:
a key limited to `runs:read` makes keys limited to `runs:read` at most. Revocation is
announced to every process in its transaction (`tx.access_changed()`), so it takes effect at
once.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import defaultdict, deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.access import Caller, Scope, rights_of
from app.domain.clock import utcnow
from app.domain.records import CredentialRecord
from app.errors import (
    AuthenticationError,
    DuplicateError,
    ForbiddenError,
    QuotaExceededError,
    RateLimitedError,
    RequestError,
    UnknownKeyError,
    UnknownUserError,
)
from app.services.access import AccessChanges
from app.services.credentials import KEY, SESSION, hash_secret, new_secret
from app.services.passwords import Passwords
from app.settings import Settings
from app.store.unit_of_work import Store

MAX_NAME_LENGTH = 100
SIGN_IN_WINDOW_SECONDS = 15 * 60
THROTTLED_NAMES = 10_000  # names whose failed sign-ins are remembered, at most


@dataclass(frozen=True)
class NewKey:
    record: CredentialRecord
    secret: str  # the key itself: shown once


@dataclass(frozen=True)
class NewSession:
    secret: str  # the cookie's value
    csrf_token: str  # what requests signed in by the cookie send in X-CSRF-Token
    expires_at: datetime
    username: str


def csrf_token(session_secret: str) -> str:
    """The CSRF token of a session: derived from its secret, so nothing more is stored, and
    only who holds the session (not a page of another site, which cannot read the cookie)
    can know it."""
    return hmac.new(session_secret.encode(), b"flow-manager csrf", hashlib.sha256).hexdigest()


class KeyService:
    def __init__(
        self,
        store: Store,
        passwords: Passwords,
        changes: AccessChanges,
        *,
        session_seconds: float,
        max_keys_per_user: int,
        sign_in_attempts: int,
    ) -> None:
        self.store = store
        self.passwords = passwords
        self.changes = changes
        self.session_seconds = session_seconds
        self.max_keys_per_user = max_keys_per_user
        self.sign_in_attempts = sign_in_attempts
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    @classmethod
    def of_settings(
        cls,
        store: Store,
        passwords: Passwords,
        changes: AccessChanges,
        settings: Settings,
    ) -> KeyService:
        """The service with the limits the settings give (the API's and the command line's)."""
        return cls(
            store,
            passwords,
            changes,
            session_seconds=settings.session_seconds,
            max_keys_per_user=settings.max_keys_per_user,
            sign_in_attempts=settings.sign_in_attempts,
        )

    # API keys.

    async def create(
        self,
        caller: Caller,
        *,
        user: str | None = None,
        name: str = "",
        scopes: Collection[Scope] | None = None,
        expires_at: datetime | None = None,
    ) -> NewKey:
        """A new key for the caller, or (for an admin) for `user`."""
        if len(name) > MAX_NAME_LENGTH:
            raise RequestError(f"a key's name has at most {MAX_NAME_LENGTH} characters")
        if expires_at is not None and expires_at <= utcnow():
            raise RequestError("expires_at must be in the future", loc=("body", "expires_at"))
        for_self = user is None or user == caller.username
        if not for_self and not caller.acts_as_admin:
            raise ForbiddenError("only an admin makes keys for other users")
        secret = new_secret()
        now = utcnow()
        async with self.store.write() as tx:
            owner = await tx.users.find(caller.username if user is None else user)
            if owner is None:
                raise UnknownUserError(f"no user is named {user!r}")
            granted = _granted_scopes(caller, owner.is_admin, for_self, scopes)
            active = [
                key for key in await tx.credentials.of_user(owner.id) if key.revoked_at is None
            ]
            if len(active) >= self.max_keys_per_user:
                raise QuotaExceededError(
                    f"{owner.username!r} has {len(active)} keys, the most MAX_KEYS_PER_USER "
                    "allows: revoke one first"
                )
            await tx.credentials.add(
                key_id=secret.id,
                user_id=owner.id,
                kind=KEY,
                name=name,
                prefix=secret.prefix,
                secret_hash=secret.hash,
                scopes=granted,
                at=now,
                expires_at=expires_at,
            )
            await tx.audit.record(
                actor=caller.username,
                action="key.create",
                target=owner.username,
                at=now,
                details={"id": secret.id, "name": name, "scopes": granted},
            )
            record = await tx.credentials.get(secret.id)
        assert record is not None
        return NewKey(record, secret.secret)

    async def list_keys(
        self, caller: Caller, user: str | None = None
    ) -> Sequence[CredentialRecord]:
        """The caller's keys; an admin may ask for another user's (`user`) or everyone's
        (`user="*"`)."""
        if user is not None and user != caller.username and not caller.acts_as_admin:
            raise ForbiddenError("only an admin lists other users' keys")
        async with self.store.read() as tx:
            if user == "*":
                return await tx.credentials.of_user(None)
            owner = await tx.users.find(user or caller.username)
            if owner is None:
                raise UnknownUserError(f"no user is named {user!r}")
            return await tx.credentials.of_user(owner.id)

    async def revoke(self, caller: Caller, key_id: str) -> None:
        """Revoke one of the caller's keys (an admin: anyone's). It stops working at once,
        in every process."""
        async with self.store.write() as tx:
            key = await tx.credentials.get(key_id)
            if (
                key is None
                or key.kind != KEY
                or (key.user_id != caller.user_id and not caller.acts_as_admin)
            ):
                raise UnknownKeyError(f"no key of yours has the id {key_id!r}")
            now = utcnow()
            if await tx.credentials.revoke(key_id, now):
                await tx.audit.record(
                    actor=caller.username,
                    action="key.revoke",
                    target=key.username,
                    at=now,
                    details={"id": key_id, "name": key.name},
                )
                await tx.access_changed()
        self.changes.forget()

    async def install(self, admin: Caller, secret: str) -> bool:
        """Make `secret` (ADMIN_API_KEY) a key of the admin, once: False when it is one
        already (or was, and was revoked: a revoked key stays revoked)."""
        digest = hash_secret(secret)
        try:
            async with self.store.write() as tx:
                if await tx.credentials.find_by_hash(digest) is not None:
                    return False
                key_id = new_secret().id
                now = utcnow()
                await tx.credentials.add(
                    key_id=key_id,
                    user_id=admin.user_id,
                    kind=KEY,
                    name="ADMIN_API_KEY",
                    prefix=secret[:4],
                    secret_hash=digest,
                    scopes=None,
                    at=now,
                    expires_at=None,
                )
                await tx.audit.record(
                    actor="ADMIN_API_KEY",
                    action="key.create",
                    target=admin.username,
                    at=now,
                    details={"id": key_id, "name": "ADMIN_API_KEY"},
                )
        except DuplicateError:  # another process installed it at the same moment
            return False
        return True

    # Dashboard sessions.

    async def sign_in(self, username: str, password: str) -> NewSession:
        """A session for the user, when the password is theirs; AuthenticationError (the
        same for an unknown name and a wrong password), RateLimitedError after too many
        failures for that name."""
        self._refuse_while_throttled(username)
        async with self.store.read() as tx:
            user = await tx.users.find(username)
        matches = await self.passwords.verify(user.password_hash if user else None, password)
        if user is None or not matches:
            self._remember_failure(username)
            raise AuthenticationError("wrong user name or password")
        self._failures.pop(username, None)
        secret = new_secret()
        now = utcnow()
        expires_at = now + timedelta(seconds=self.session_seconds)
        async with self.store.write() as tx:
            await tx.credentials.delete_ended_sessions(user.id, now)
            await tx.credentials.add(
                key_id=secret.id,
                user_id=user.id,
                kind=SESSION,
                name="dashboard",
                prefix=secret.prefix,
                secret_hash=secret.hash,
                scopes=None,
                at=now,
                expires_at=expires_at,
            )
        return NewSession(secret.secret, csrf_token(secret.secret), expires_at, user.username)

    async def sign_out(self, caller: Caller) -> None:
        if caller.key_id is None or not caller.via_session:
            return
        async with self.store.write() as tx:
            await tx.credentials.revoke(caller.key_id, utcnow())
            await tx.access_changed()
        self.changes.forget()

    def _remember_failure(self, username: str) -> None:
        if len(self._failures) >= THROTTLED_NAMES and username not in self._failures:
            horizon = time.monotonic() - SIGN_IN_WINDOW_SECONDS
            for name in [name for name, times in self._failures.items() if times[-1] < horizon]:
                del self._failures[name]
            if len(self._failures) >= THROTTLED_NAMES:  # a spray of names: forget the oldest
                del self._failures[next(iter(self._failures))]
        self._failures[username].append(time.monotonic())

    def _refuse_while_throttled(self, username: str) -> None:
        failures = self._failures.get(username)
        if not failures:
            return
        horizon = time.monotonic() - SIGN_IN_WINDOW_SECONDS
        while failures and failures[0] < horizon:
            failures.popleft()
        if len(failures) >= self.sign_in_attempts:
            retry_after = failures[0] - horizon
            raise RateLimitedError(
                f"too many failed sign-ins for {username!r}; try again in {retry_after:.0f} s",
                retry_after=retry_after,
            )


def _granted_scopes(
    caller: Caller, owner_is_admin: bool, for_self: bool, asked: Collection[Scope] | None
) -> list[str] | None:
    """The scopes to store (None: all of the owner's rights, whatever they become)."""
    rights = rights_of(owner_is_admin)
    if asked is None:
        # A caller with fewer than all its rights cannot make a key with more than its own.
        if for_self and caller.scopes != rights:
            return sorted(caller.scopes & rights)
        return None
    beyond_user = set(asked) - rights
    if beyond_user:
        raise RequestError(
            f"{', '.join(sorted(beyond_user))}: only an admin's keys hold that scope",
            loc=("body", "scopes"),
        )
    beyond_caller = set(asked) - caller.scopes
    if for_self and beyond_caller:
        raise ForbiddenError(
            f"your credential lacks {', '.join(sorted(beyond_caller))}: a key cannot have more "
            "rights than the credential that makes it"
        )
    return sorted(set(asked))

"""Credentials: API keys and dashboard sessions, and turning one into the caller it stands for.

A secret is `fm_` and 43 characters of `secrets.token_urlsafe(32)` (256 random bits). The store
keeps its SHA-256 only, and its first characters (`prefix`) so that people can tell their keys
apart. A key this random cannot be guessed from its hash, so a fast hash is enough, and it keeps
the check of every request cheap (GitHub and Stripe keep theirs the same way); passwords, which
people choose, get Argon2 instead (`passwords.py`).

`Authenticator.caller` runs on every request. What it read of a credential is cached by its
kind and the secret's hash (a burst of requests with a new key reads it once: `LoadingCache`)
until access changes (`access.py`) or `AUTH_CACHE_SECONDS` pass, and an expiry is checked on
every use, so a revoked or expired key is refused at once. `last_used_at` is
kept in memory and written every `KEY_USAGE_FLUSH_SECONDS`, many keys in one statement, never
a commit per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from app.background import stop_task
from app.domain.access import Caller, Scope, rights_of
from app.domain.clock import utcnow
from app.domain.records import CredentialHolder
from app.errors import AuthenticationError
from app.services.access import new_cache
from app.services.loading_cache import LoadingCache
from app.store.unit_of_work import Store

logger = logging.getLogger(__name__)

SECRET_PREFIX = "fm_"
PREFIX_LENGTH = 10  # `fm_` and 7 characters of the secret, shown to tell keys apart
MAX_SECRET_LENGTH = 512  # longer is not a credential of ours: refused before any hashing
KEY, SESSION = "key", "session"


@dataclass(frozen=True)
class NewSecret:
    id: str
    secret: str  # shown once, never stored
    prefix: str
    hash: str


def new_secret() -> NewSecret:
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    return NewSecret(secrets.token_hex(8), secret, secret[:PREFIX_LENGTH], hash_secret(secret))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class _Known:
    caller: Caller
    expires_at: datetime | None


class Authenticator:
    def __init__(
        self,
        store: Store,
        *,
        required: bool,
        cache_seconds: float,
        flush_seconds: float,
    ) -> None:
        """`required`: callers must authenticate (AUTH on); else a caller without a
        credential acts as the local admin (found at its first use, see `start`)."""
        self.store = store
        self.required = required
        self._find_local_admin: Callable[[], Awaitable[Caller]] | None = None
        self._local_admin = LoadingCache[tuple[()], Caller]({})  # one value, found once
        self.flush_seconds = flush_seconds
        self._known = LoadingCache[tuple[str, str], _Known](new_cache(cache_seconds))
        self._used: dict[str, datetime] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def start(self, find_local_admin: Callable[[], Awaitable[Caller]] | None) -> None:
        """`find_local_admin`: who a caller without a credential acts as when authentication
        is off; asked at the first such request (the store may not answer at start-up)."""
        self._find_local_admin = find_local_admin
        self._flusher = asyncio.create_task(self._flush_forever(), name="key-usage")

    async def close(self) -> None:
        await stop_task(self._flusher)
        self._flusher = None
        await self.flush_usage()

    def forget(self) -> None:
        self._local_admin.forget()  # it may have been deleted, or lost its admin rights
        self._known.forget()

    async def caller(self, secret: str | None, *, kind: str = KEY) -> Caller:
        """The caller a credential of `kind` stands for; AuthenticationError when it is
        missing (and required), unknown, revoked or expired."""
        if secret is None:
            if self.required or self._find_local_admin is None:
                raise AuthenticationError()
            return await self._local_admin.get((), self._find_local_admin)
        if len(secret) > MAX_SECRET_LENGTH:
            raise AuthenticationError("the credential is not valid")
        digest = hash_secret(secret)
        now = utcnow()
        known = await self._known.get(
            (kind, digest), functools.partial(self._look_up, digest, kind)
        )
        if known.expires_at is not None and known.expires_at <= now:
            raise AuthenticationError(_EXPIRED[kind])
        if known.caller.key_id is not None:
            self._used[known.caller.key_id] = now
        return known.caller

    async def _look_up(self, digest: str, kind: str) -> _Known:
        async with self.store.read() as tx:
            holder = await tx.credentials.find_by_hash(digest)
        if holder is None or holder.user_deleted or holder.credential.kind != kind:
            raise AuthenticationError("the credential is not valid")
        if holder.credential.revoked_at is not None:
            raise AuthenticationError(_REVOKED[kind])
        return _Known(caller_of(holder), holder.credential.expires_at)

    async def flush_usage(self) -> None:
        """Write when each credential used since the last flush was last used."""
        used, self._used = self._used, {}
        if not used:
            return
        try:
            async with self.store.write() as tx:
                await tx.credentials.record_use(used.items())
        except Exception as error:  # a statistic: never worth failing or retrying for
            logger.warning("recording when %d key(s) were last used failed: %r", len(used), error)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            with contextlib.suppress(Exception):
                await self.flush_usage()


def caller_of(holder: CredentialHolder) -> Caller:
    """A credential's scopes, within what its user may do now (a user who is no longer an
    admin loses the `admin` scope of its keys)."""
    record = holder.credential
    rights = rights_of(holder.is_admin)
    scopes = rights if record.scopes is None else frozenset(map(Scope, record.scopes)) & rights
    return Caller(
        user_id=record.user_id,
        username=record.username,
        is_admin=holder.is_admin,
        scopes=scopes,
        key_id=record.id,
        via_session=record.kind == SESSION,
    )


_REVOKED = {KEY: "the API key was revoked", SESSION: "the session has ended; sign in again"}
_EXPIRED = {KEY: "the API key has expired", SESSION: "the session has expired; sign in again"}

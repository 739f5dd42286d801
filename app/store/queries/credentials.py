"""API keys and dashboard sessions (`api_keys`): made, found by the hash of their secret,
listed, revoked. The unit of work owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.records import CredentialHolder, CredentialRecord
from app.store.models import CREDENTIALS, USERS, CredentialRow


class Credentials:
    """API keys and dashboard sessions, in one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        *,
        key_id: str,
        user_id: str,
        kind: str,
        name: str,
        prefix: str,
        secret_hash: str,
        scopes: Sequence[str] | None,
        at: datetime,
        expires_at: datetime | None,
    ) -> None:
        """A new credential; the unit of work raises DuplicateError when its secret is one
        already (made meanwhile by another process)."""
        self._session.add(
            CredentialRow(
                id=key_id,
                user_id=user_id,
                kind=kind,
                name=name,
                prefix=prefix,
                secret_hash=secret_hash,
                scopes=list(scopes) if scopes is not None else None,
                created_at=at,
                expires_at=expires_at,
            )
        )
        await self._session.flush()

    async def find_by_hash(self, secret_hash: str) -> CredentialHolder | None:
        """The credential whose secret has this hash, revoked and expired ones included (the
        caller decides), with its user."""
        found = (await self._session.execute(_BY_HASH, {"hash": secret_hash})).one_or_none()
        if found is None:
            return None
        return CredentialHolder(_record(found), bool(found.is_admin), found.deleted_at is not None)

    async def of_user(
        self, user_id: str | None, *, kind: str = "key"
    ) -> Sequence[CredentialRecord]:
        """The user's credentials of `kind` (every user's with None), newest first."""
        statement = _LISTING.where(CREDENTIALS.c.kind == kind)
        if user_id is not None:
            statement = statement.where(CREDENTIALS.c.user_id == user_id)
        rows = await self._session.execute(statement.order_by(CREDENTIALS.c.created_at.desc()))
        return [_record(row) for row in rows]

    async def get(self, key_id: str) -> CredentialRecord | None:
        statement = _LISTING.where(CREDENTIALS.c.id == key_id)
        found = (await self._session.execute(statement)).one_or_none()
        return _record(found) if found is not None else None

    async def revoke(self, key_id: str, at: datetime) -> bool:
        """Revoke the credential; False when it was revoked already."""
        result = await self._session.execute(
            update(CredentialRow)
            .where(CredentialRow.id == key_id, CredentialRow.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def revoke_all_of(self, user_id: str, at: datetime) -> None:
        await self._session.execute(
            update(CredentialRow)
            .where(CredentialRow.user_id == user_id, CredentialRow.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def delete_ended_sessions(self, user_id: str, now: datetime) -> None:
        """Forget the user's sessions that expired or were signed out of."""
        await self._session.execute(
            delete(CredentialRow).where(
                CredentialRow.user_id == user_id,
                CredentialRow.kind == "session",
                or_(CredentialRow.revoked_at.is_not(None), CredentialRow.expires_at <= now),
            )
        )

    async def record_use(self, used: Iterable[tuple[str, datetime]]) -> None:
        """When each credential was last used, in one statement for all of them."""
        values = [{"key": key_id, "at": at} for key_id, at in used]
        if values:
            await self._session.execute(_RECORD_USE, values)


def _record(row: Row[*tuple[Any, ...]]) -> CredentialRecord:
    scopes = row.scopes
    return CredentialRecord(
        id=row.id,
        user_id=row.user_id,
        username=row.username,
        kind=row.kind,
        name=row.name,
        prefix=row.prefix,
        scopes=tuple(scopes) if scopes is not None else None,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


_COLUMNS = (
    CREDENTIALS.c.id,
    CREDENTIALS.c.user_id,
    USERS.c.username,
    CREDENTIALS.c.kind,
    CREDENTIALS.c.name,
    CREDENTIALS.c.prefix,
    CREDENTIALS.c.scopes,
    CREDENTIALS.c.created_at,
    CREDENTIALS.c.expires_at,
    CREDENTIALS.c.last_used_at,
    CREDENTIALS.c.revoked_at,
)
_LISTING = select(*_COLUMNS).join(USERS, USERS.c.id == CREDENTIALS.c.user_id)
# Built once: a request whose credential is not cached runs it.
_BY_HASH = (
    select(*_COLUMNS, USERS.c.is_admin, USERS.c.deleted_at)
    .join(USERS, USERS.c.id == CREDENTIALS.c.user_id)
    .where(CREDENTIALS.c.secret_hash == bindparam("hash"))
)
_RECORD_USE = (
    update(CREDENTIALS)
    .where(CREDENTIALS.c.id == bindparam("key"))
    .values(last_used_at=bindparam("at"))
)

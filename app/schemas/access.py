"""Requests and answers of the routes about users, keys, shares, sign-in and the audit log
(DESIGN.md section 7)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, Strict

from app.domain.access import Caller, Scope
from app.domain.records import AuditEntry, AuditPage, CredentialRecord, ShareRecord, UserRecord
from app.schemas.common import RequestModel, Timestamp
from app.services.keys import NewKey, NewSession

PermissionName = Literal["view", "run", "edit", "admin"]


class Me(BaseModel):
    username: str
    admin: bool = Field(description="the user is an administrator")
    scopes: list[Scope] = Field(description="what the credential of this request may do")

    @classmethod
    def of(cls, caller: Caller) -> Me:
        return cls(username=caller.username, admin=caller.is_admin, scopes=sorted(caller.scopes))


class UserCreate(RequestModel):
    username: str = Field(min_length=1, max_length=64, examples=["ada"])
    email: str | None = Field(None, max_length=254)
    password: str | None = Field(
        None, max_length=1024, description="for signing in to the dashboard; 8 characters or more"
    )
    admin: bool = False


class UserItem(BaseModel):
    username: str
    email: str | None
    admin: bool
    created_at: Timestamp

    @classmethod
    def of(cls, user: UserRecord) -> UserItem:
        return cls(
            username=user.username,
            email=user.email,
            admin=user.is_admin,
            created_at=user.created_at,
        )


class KeyCreate(RequestModel):
    # JSON has neither enums nor dates: scopes and expires_at are read from their strings.
    name: str = Field("", max_length=100, examples=["ci"])
    scopes: list[Annotated[Scope, Strict(False)]] | None = Field(
        None, description="what the key may do; default: everything its user may"
    )
    expires_at: Annotated[AwareDatetime | None, Strict(False)] = Field(
        None, description="when it stops working (ISO 8601, with its offset)"
    )
    user: str | None = Field(None, max_length=64, description="whose key (admins only)")


class KeyItem(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="the key's first characters, to tell keys apart")
    user: str
    scopes: list[str] | None = Field(description="null: everything its user may do")
    created_at: Timestamp
    expires_at: Timestamp | None
    last_used_at: Timestamp | None = Field(
        description="written every KEY_USAGE_FLUSH_SECONDS, not on each request"
    )
    revoked_at: Timestamp | None

    @classmethod
    def of(cls, key: CredentialRecord) -> KeyItem:
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            user=key.username,
            scopes=list(key.scopes) if key.scopes is not None else None,
            created_at=key.created_at,
            expires_at=key.expires_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class KeyCreated(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str] | None
    expires_at: Timestamp | None
    key: str = Field(description="the key itself: shown this once, never again")

    @classmethod
    def of(cls, new: NewKey) -> KeyCreated:
        key = new.record
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            scopes=list(key.scopes) if key.scopes is not None else None,
            expires_at=key.expires_at,
            key=new.secret,
        )


class SharePut(RequestModel):
    permission: PermissionName


class ShareItem(BaseModel):
    user: str
    permission: str = Field(description="view, run, edit or admin")
    created_at: Timestamp

    @classmethod
    def of(cls, share: ShareRecord) -> ShareItem:
        return cls(user=share.username, permission=share.permission, created_at=share.created_at)


class FlowPatch(RequestModel):
    public: bool | None = Field(None, description="viewable by every user")
    description: str | None = Field(None, max_length=10_000)
    owner: str | None = Field(None, max_length=64, description="give the flow to this user")


class SignIn(RequestModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class SignedIn(BaseModel):
    username: str
    expires_at: Timestamp
    csrf_token: str = Field(
        description="send it as X-CSRF-Token with every request that changes something"
    )

    @classmethod
    def of(cls, session: NewSession) -> SignedIn:
        return cls(
            username=session.username, expires_at=session.expires_at, csrf_token=session.csrf_token
        )


class AuditItem(BaseModel):
    id: int
    at: Timestamp
    actor: str
    action: str
    target: str
    details: Any | None

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditItem:
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            details=entry.details,
        )


class AuditList(BaseModel):
    items: list[AuditItem]
    next_cursor: str | None

    @classmethod
    def of(cls, page: AuditPage) -> AuditList:
        return cls(
            items=[AuditItem.of(entry) for entry in page.items], next_cursor=page.next_cursor
        )

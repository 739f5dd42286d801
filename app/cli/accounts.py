"""`python -m app users ...` and `python -m app keys ...`: accounts, from the server's machine.

These commands open the store named by DATABASE_URL directly (migrating it first where
MIGRATE_ON_START says so, as the service does) and act with every right: whoever may run them
may read the store anyway. Changes are announced like the API's, so a revoked key stops
working at once in every running PostgreSQL process; a SQLite service reads credentials from
the store on every request, so it sees them at once too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.access import COMMAND_LINE, Scope
from app.domain.clock import utcnow
from app.domain.records import CredentialRecord, UserRecord
from app.services.access import AccessChanges
from app.services.keys import KeyService, NewKey
from app.services.passwords import Passwords
from app.services.users import UserService
from app.settings import Settings
from app.store import migrations
from app.store.database import create_engine
from app.store.unit_of_work import Store


@dataclass(frozen=True)
class Accounts:
    users: UserService
    keys: KeyService


@asynccontextmanager
async def accounts(settings: Settings) -> AsyncIterator[Accounts]:
    engine = create_engine(settings)
    try:
        if settings.should_migrate_on_start:
            await migrations.upgrade(engine)
        store = Store(engine)
        passwords, changes = Passwords(), AccessChanges()
        yield Accounts(
            UserService(store, passwords, changes),
            KeyService.of_settings(store, passwords, changes, settings),
        )
    finally:
        await engine.dispose()


async def create_user(
    settings: Settings,
    username: str,
    *,
    admin: bool,
    email: str | None,
    password: str | None,
    with_key: bool,
) -> tuple[UserRecord, NewKey | None]:
    async with accounts(settings) as found:
        user = await found.users.create(
            COMMAND_LINE, username, email=email, password=password, admin=admin
        )
        key = await found.keys.create(COMMAND_LINE, user=username, name="cli") if with_key else None
    return user, key


async def list_users(settings: Settings) -> Sequence[UserRecord]:
    async with accounts(settings) as found:
        return await found.users.list_users()


async def set_password(settings: Settings, username: str, password: str) -> None:
    async with accounts(settings) as found:
        await found.users.set_password(COMMAND_LINE, username, password)


async def create_key(
    settings: Settings,
    username: str,
    *,
    name: str,
    scopes: Sequence[Scope] | None,
    expires_in_days: float | None,
) -> NewKey:
    expires_at: datetime | None = None
    if expires_in_days is not None:
        expires_at = utcnow() + timedelta(days=expires_in_days)
    async with accounts(settings) as found:
        return await found.keys.create(
            COMMAND_LINE, user=username, name=name, scopes=scopes, expires_at=expires_at
        )


async def list_keys(settings: Settings, username: str | None) -> Sequence[CredentialRecord]:
    async with accounts(settings) as found:
        return await found.keys.list_keys(COMMAND_LINE, username or "*")


async def revoke_key(settings: Settings, key_id: str) -> None:
    async with accounts(settings) as found:
        await found.keys.revoke(COMMAND_LINE, key_id)

"""The store as services see it: a unit of work per use case, and nothing of SQL.

`Store.write()` opens a transaction that commits when its block ends (and rolls back when the
block raises); `Store.read()` one that only reads. Each yields a `Transaction`, whose
attributes are the store's operations on that transaction, topic by topic:

    async with store.write() as tx:
        flow = await tx.flows.lock(name)
        await tx.audit.record(...)
        await tx.access_changed()

The driver's errors end at this boundary: an integrity violation (what was to be made was
made meanwhile by another request) becomes `DuplicateError`, and a passing failure (the store
unreachable, overloaded, a deadlock or serialization failure) `StoreUnavailableError`.
Anything else the store refuses stays as raised: a bug, not a state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.errors import DuplicateError, StoreUnavailableError
from app.store import notifications
from app.store.audit import AuditLog
from app.store.credentials import Credentials
from app.store.database import is_passing_failure, session_factory
from app.store.definitions import Versions
from app.store.flows import Flows
from app.store.users import Users
from app.store.workers import Workers

REACHABLE_SECONDS = 5.0


class Transaction:
    """One transaction of the store: each topic's operations, bound to it."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.flows = Flows(session)
        self.versions = Versions(session)
        self.users = Users(session)
        self.credentials = Credentials(session)
        self.audit = AuditLog(session)
        self.workers = Workers(session)

    async def access_changed(self) -> None:
        """Tell every process, once this transaction commits, that users, keys, shares or a
        flow's ownership changed (PostgreSQL's `NOTIFY`; nothing elsewhere)."""
        await notifications.notify(self._session, notifications.ACCESS_CHANGED)


class Store:
    """The store of one service process, on its engine (whose pool it shares)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = session_factory(engine)

    @property
    def dialect(self) -> str:
        """`postgresql`, `sqlite` or `mysql`."""
        return self._engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Transaction]:
        """A transaction that reads (it is rolled back at the end: nothing to commit)."""
        with _translated_errors():
            async with self._sessions() as session:
                yield Transaction(session)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Transaction]:
        """A transaction committed when the block ends, rolled back when it raises."""
        with _translated_errors():
            async with self._sessions.begin() as session:
                yield Transaction(session)

    async def close(self) -> None:
        """Close the engine's connections (the engine is closed with it)."""
        await self._engine.dispose()

    async def reachable(self) -> bool:
        """Whether the store answers a trivial query within REACHABLE_SECONDS."""
        try:
            async with asyncio.timeout(REACHABLE_SECONDS), self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (exc.SQLAlchemyError, OSError, TimeoutError):
            return False
        return True


@contextmanager
def _translated_errors() -> Iterator[None]:
    """The driver's errors as the project's (see the module's docstring)."""
    try:
        yield
    except exc.IntegrityError as error:
        # Not the driver's words: they name constraints, and callers may be answered this.
        raise DuplicateError() from error
    except Exception as error:
        if is_passing_failure(error):
            raise StoreUnavailableError() from error
        raise

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
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.errors import DuplicateError
from app.settings import Settings
from app.store import database, locks, migrations, notifications
from app.store.database import create_engine, passing_failures_translated, session_factory
from app.store.queries.audit import AuditLog
from app.store.queries.credentials import Credentials
from app.store.queries.flows import Flows
from app.store.queries.gauges import Gauges
from app.store.queries.retention import Pruning
from app.store.queries.schedules import Schedules
from app.store.queries.users import Users
from app.store.queries.versions import Versions
from app.store.queries.workers import Workers
from app.store.run_store import SqlRunStore

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
        self.gauges = Gauges(session)
        self.pruning = Pruning(session)
        self.schedules = Schedules(session)

    async def access_changed(self) -> None:
        """Tell every process, once this transaction commits, that users, keys, shares or a
        flow's ownership changed (PostgreSQL's `NOTIFY`; nothing elsewhere)."""
        await notifications.notify(self._session, notifications.ACCESS_CHANGED)


class Store:
    """The store of one service process, on its engine (whose pool it shares)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)

    @classmethod
    def of_settings(cls, settings: Settings) -> Store:
        """The store at DATABASE_URL, its pool sized by the settings (nothing is opened yet)."""
        return cls(create_engine(settings))

    @property
    def dialect(self) -> str:
        """`postgresql`, `sqlite` or `mysql`."""
        return self.engine.dialect.name

    async def migrate(self) -> None:
        """Bring the schema up to the newest migration."""
        await migrations.upgrade(self.engine)

    def runs(self, owner: str) -> SqlRunStore:
        """The runs, as the worker `owner` writes them (the engine's and the services' port),
        on this store's pool."""
        return SqlRunStore(self.engine, owner)

    def listener(self, handlers: Mapping[str, notifications.Handler]) -> notifications.Listener:
        """A listener of the store's notifications (PostgreSQL only: see `notifies`)."""
        return notifications.Listener(self.engine.url, handlers)

    @property
    def notifies(self) -> bool:
        """Whether changes reach other processes as notifications (PostgreSQL's NOTIFY); other
        stores are polled."""
        return self.dialect == "postgresql"

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

    @asynccontextmanager
    async def try_lock(self, name: str) -> AsyncIterator[bool]:
        """Whether this process holds the lock `name` for the block, taken without waiting
        (False: another process holds it); one per store, across processes (`locks.py`)."""
        with _translated_errors():
            async with locks.try_lock(self.engine, name) as held:
                yield held

    @staticmethod
    def on_passing_failure(listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` at each passing failure of this process's stores (they become
        `StoreUnavailableError`); what stops it."""
        database.failure_listeners.append(listener)
        return lambda: database.failure_listeners.remove(listener)

    async def close(self) -> None:
        """Close the engine's connections (the engine is closed with it)."""
        await self.engine.dispose()

    async def reachable(self) -> bool:
        """Whether the store answers a trivial query within REACHABLE_SECONDS."""
        try:
            async with asyncio.timeout(REACHABLE_SECONDS), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (exc.SQLAlchemyError, OSError, TimeoutError):
            return False
        return True


@contextmanager
def _translated_errors() -> Iterator[None]:
    """The driver's errors as the project's (see the module's docstring)."""
    try:
        with passing_failures_translated():
            yield
    except exc.IntegrityError as error:
        # Not the driver's words: they name constraints, and callers may be answered this.
        raise DuplicateError() from error

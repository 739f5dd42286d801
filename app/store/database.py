"""The store's engine and sessions, chosen by DATABASE_URL.

`sqlite+aiosqlite` (the default), `postgresql+asyncpg` and `mysql+aiomysql`; plain
`postgresql://`, `postgres://`, `mysql://`, `mariadb://` and `sqlite://` URLs get their async
driver added.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.errors import StoreUnavailableError
from app.settings import Settings

_ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
    "sqlite": "sqlite+aiosqlite",
}


def async_url(url: str) -> str:
    """The URL with its async driver named."""
    scheme, separator, rest = url.partition("://")
    if "+" in scheme or not separator:
        return url
    return f"{_ASYNC_DRIVERS.get(scheme, scheme)}://{rest}"


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(async_url(settings.database_url))
    options: dict[str, Any] = {"pool_pre_ping": False}
    if url.get_backend_name() == "sqlite":
        # SQLite has one writer at a time. Several connections would contend for it in
        # SQLite's busy handler, which sleeps up to 100 ms between tries (1.3 s p99 under 16
        # clients); one connection makes the process's transactions queue in order instead.
        # Only one process serves a SQLite store, so this is the whole queue.
        # Not reset on return: every SQLAlchemy transaction ends with its own commit or
        # rollback, and the fast path's batches (store/sqlite.py) with theirs, on the
        # connection's thread; the pool's extra rollback was one more hop there per checkout.
        options.update(
            connect_args={"timeout": 30},
            pool_reset_on_return=None,
            pool_size=1,
            max_overflow=0,
            pool_timeout=settings.pool_timeout,
        )
    else:
        options.update(
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout,
            pool_recycle=settings.pool_recycle,
        )
    if url.get_backend_name() == "mysql":
        # PostgreSQL's default. InnoDB's REPEATABLE READ adds gap locks, which make a claim
        # (`FOR UPDATE SKIP LOCKED`) wait on another claimer instead of skipping its rows.
        options.update(isolation_level="READ COMMITTED")
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # ON DELETE CASCADE needs it
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_PASSING_ERRORS = (
    StoreUnavailableError,  # one the unit of work translated already
    # SQLite's own, raised by its fast path (store/sqlite.py) without SQLAlchemy's wrapper,
    # whose OperationalError counts as passing below: a lock, the disk.
    sqlite3.OperationalError,
    OSError,  # the network
    TimeoutError,
    exc.TimeoutError,  # no connection free in the pool in time
    exc.InterfaceError,
    asyncpg.PostgresConnectionError,  # refused, or lost
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InsufficientResourcesError,  # too many connections, out of memory or disk
    asyncpg.OperatorInterventionError,  # the server is starting or shutting down
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


# MariaDB and MySQL report a refused CHECK constraint (a JSON column's JSON_VALID) as an
# OperationalError; it refuses what was asked, and would refuse it again.
_MYSQL_CHECK_REFUSED = frozenset({3819, 4025})


def is_passing_failure(error: BaseException) -> bool:
    """Whether the store failed for a passing reason (unreachable, overloaded, a deadlock),
    not because of what was asked of it: the same work may succeed later."""
    if isinstance(error, exc.DBAPIError):
        if _refused_by_check(error.orig):
            return False
        if error.connection_invalidated or isinstance(error, exc.OperationalError):
            return True
        # The driver's own error: asyncpg's, under the adapter's wrapper of SQLAlchemy.
        driver_error: BaseException | None = error.orig
        while driver_error is not None:
            if isinstance(driver_error, _PASSING_ERRORS):
                return True
            driver_error = driver_error.__cause__
        return False
    return isinstance(error, _PASSING_ERRORS)


# Told of each passing failure as it is translated (the service's metrics count them): the
# process's stores, whichever path failed. A listener must be cheap and must not raise.
failure_listeners: list[Callable[[], None]] = []


@contextmanager
def passing_failures_translated() -> Iterator[None]:
    """The store's passing failures (`is_passing_failure`) as `StoreUnavailableError`, so that
    no driver error leaves the store for them; any other error as it was raised."""
    try:
        yield
    except StoreUnavailableError:
        raise
    except Exception as error:
        if is_passing_failure(error):
            for listener in failure_listeners:
                listener()
            raise StoreUnavailableError(f"the store failed: {error!r}") from error
        raise


def _refused_by_check(driver_error: BaseException | None) -> bool:
    code = getattr(driver_error, "args", (None,))[:1]
    return bool(code) and code[0] in _MYSQL_CHECK_REFUSED

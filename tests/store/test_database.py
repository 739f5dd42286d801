"""The store's engine: which failures pass (the work may succeed later) and which are final."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc

from app.store.database import is_passing_failure


def _wrapped_by_sqlalchemy(driver_error: Exception) -> exc.DBAPIError:
    """As SQLAlchemy's asyncpg adapter raises it: the driver's error under an adapter error."""
    adapted = Exception(str(driver_error))
    adapted.__cause__ = driver_error
    return exc.DBAPIError("SELECT 1", {}, adapted)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError("reset by peer"),
        _wrapped_by_sqlalchemy(asyncpg.TooManyConnectionsError("too many clients already")),
        TimeoutError(),
        exc.TimeoutError("QueuePool limit reached"),
        exc.OperationalError("SELECT 1", {}, Exception("Lost connection to MySQL server")),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.DeadlockDetectedError("deadlock detected"),
        exc.DBAPIError("UPDATE", {}, asyncpg.ConnectionDoesNotExistError("closed")),
    ],
)
def test_an_unreachable_or_overloaded_store_is_a_passing_failure(error: Exception) -> None:
    assert is_passing_failure(error)


@pytest.mark.parametrize(
    "error",
    [
        exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
        _wrapped_by_sqlalchemy(asyncpg.UniqueViolationError("duplicate key")),
        exc.DataError("INSERT", {}, Exception("value too long")),
        asyncpg.UniqueViolationError("duplicate key"),
        ValueError("a bug"),
    ],
)
def test_a_refused_statement_is_a_final_failure(error: Exception) -> None:
    assert not is_passing_failure(error)

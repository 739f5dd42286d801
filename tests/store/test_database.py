"""The store's engine: which failures pass (the work may succeed later) and which are final."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc

from app.store.database import is_passing_failure


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError("reset by peer"),
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
        exc.DataError("INSERT", {}, Exception("value too long")),
        asyncpg.UniqueViolationError("duplicate key"),
        ValueError("a bug"),
    ],
)
def test_a_refused_statement_is_a_final_failure(error: Exception) -> None:
    assert not is_passing_failure(error)

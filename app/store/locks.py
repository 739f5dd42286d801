"""Locks that make one process of many do a job (e.g. pruning runs), taken without waiting.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`), scoped to the database;
MariaDB: `GET_LOCK(name, 0)`, whose names are server-wide, so the name is qualified by the
database's. Each is held by one connection taken from the pool for the job's length (the job
itself runs its transactions on other connections) and goes with it: a process that dies
lets go of its lock when the server drops its connection. SQLite is one process: the lock is
always had.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

logger = logging.getLogger(__name__)

_TAKE = {
    "postgresql": "SELECT pg_try_advisory_lock(:key)",
    "mysql": "SELECT GET_LOCK(SHA1(CONCAT(DATABASE(), ':', :name)), 0)",
}
_RELEASE = {
    "postgresql": "SELECT pg_advisory_unlock(:key)",
    "mysql": "SELECT RELEASE_LOCK(SHA1(CONCAT(DATABASE(), ':', :name)))",
}


@asynccontextmanager
async def try_lock(engine: AsyncEngine, name: str) -> AsyncIterator[bool]:
    """Whether this process holds the lock `name` for the block (False: another one does)."""
    dialect = engine.dialect.name
    if dialect not in _TAKE:
        yield True
        return
    parameters = {"key": _advisory_key(name), "name": name}
    async with engine.connect() as connection:
        held = bool(await connection.scalar(text(_TAKE[dialect]), parameters))
        await connection.commit()  # the lock outlives the transaction; no snapshot is held
        try:
            yield held
        finally:
            if held:
                await _release(connection, _RELEASE[dialect], parameters)


async def _release(
    connection: AsyncConnection, statement: str, parameters: dict[str, object]
) -> None:
    try:
        await connection.execute(text(statement), parameters)
        await connection.commit()
    except Exception:
        # The connection may still hold the lock: it must not go back to the pool.
        logger.exception("releasing a lock failed; its connection is closed")
        await connection.invalidate()


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)

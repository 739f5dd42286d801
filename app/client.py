"""Start runs from an application, in its own database transaction (PostgreSQL).

    import asyncpg
    from app.client import start_run

    async with connection.transaction():
        await connection.execute("INSERT INTO orders ...")
        run_id = await start_run(connection, "ShipOrder", {"order_id": 42})
    # the run exists if and only if the transaction committed; a worker runs it

Each function is one call to the SQL function `flow_manager.start_run` (or `start_runs`) that
the store's migrations install, on the caller's connection: an asyncpg `Connection`, or a
SQLAlchemy `AsyncConnection`/`AsyncSession` (`start_run_sync`/`start_runs_sync`: a SQLAlchemy
`Connection`/`Session`). The inputs are checked as the API checks them, before the run is
written; a refusal raises the `app.errors` type the API would answer with (and aborts the
transaction, as any failed statement does). docs/architecture.md, "Starting runs from SQL".
"""

from __future__ import annotations

from app.store.enqueue import start_run, start_run_sync, start_runs, start_runs_sync

__all__ = ["start_run", "start_run_sync", "start_runs", "start_runs_sync"]

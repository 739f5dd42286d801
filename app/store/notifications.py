"""PostgreSQL `LISTEN/NOTIFY`: wake the workers when runs are queued, cancel runs anywhere,
forget cached credentials and permissions when access changes, recount the claiming workers
when one comes or goes.

A notification is sent inside the transaction that makes the change, so PostgreSQL delivers it
only once the change is committed (and never when it rolls back). Notifications are a fast
path, not the source of truth: a worker also polls, and it checks its runs' state when it
renews their leases, so a notification lost while a listener reconnects delays, never loses.
Other databases have no `NOTIFY`: `notify` does nothing there and workers poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.background import stop_task

logger = logging.getLogger(__name__)

RUNS_QUEUED = "flow_manager_runs_queued"  # payload: empty
RUN_CANCELLED = "flow_manager_run_cancelled"  # payload: the run id
ACCESS_CHANGED = "flow_manager_access_changed"  # payload: empty; users, keys or shares changed
RUN_EVENTS = "flow_manager_run_events"  # payload: run ids, comma-separated, with new events
ELEMENTS_QUEUED = "flow_manager_elements_queued"  # payload: empty; a fan-out was shared
WORKERS_CHANGED = "flow_manager_workers_changed"  # payload: empty; a worker came or went

RECONNECT_DELAY = 1.0  # seconds between attempts to reopen a lost listening connection

Handler = Callable[[str], None]


async def notify(session: AsyncSession | AsyncConnection, channel: str, payload: str = "") -> None:
    """Notify the listeners of `channel` when the session's transaction commits."""
    bind = session if isinstance(session, AsyncConnection) else session.get_bind()
    if bind.dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
        )


class Listener:
    """Listens on a connection of its own and calls `handlers[channel](payload)`.

    When the connection drops it reconnects, and calls every handler with an empty payload:
    notifications may have been missed, so each handler checks for itself.
    """

    def __init__(self, url: URL, handlers: Mapping[str, Handler]) -> None:
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.handlers = dict(handlers)
        self._loop: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # set while a connection listens (tests wait on it)

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._listen_forever(), name="notification-listener")

    async def stop(self) -> None:
        await stop_task(self._loop)
        self._loop = None

    async def _listen_forever(self) -> None:
        reconnecting = False
        while True:
            try:
                await self._listen(reconnecting)
            except (OSError, asyncpg.PostgresError) as error:
                logger.warning("notification listener lost its connection: %s", error)
            self.listening.clear()
            reconnecting = True
            await asyncio.sleep(RECONNECT_DELAY)

    async def _listen(self, reconnecting: bool) -> None:
        connection = await asyncpg.connect(self.dsn)
        closed = asyncio.Event()
        connection.add_termination_listener(lambda _: closed.set())
        try:
            for channel in self.handlers:
                await connection.add_listener(channel, self._dispatch)
            self.listening.set()
            if reconnecting:
                for handler in self.handlers.values():
                    handler("")
            await closed.wait()
        finally:
            with contextlib.suppress(Exception):
                await connection.close(timeout=1)

    def _dispatch(self, _connection: object, _pid: int, channel: str, payload: object) -> None:
        try:
            self.handlers[channel](str(payload))
        except Exception:  # a handler's bug must not stop the listener
            logger.exception("handling a %s notification failed", channel)

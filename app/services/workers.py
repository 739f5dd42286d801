"""Reading the registered workers."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.store import workers
from app.store.records import WorkerRecord


class WorkerService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def list_workers(self) -> list[WorkerRecord]:
        async with self.sessions() as session:
            return list(await workers.all_workers(session))

"""Reading the registered workers."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.records import WorkerRecord
from app.store import workers


class WorkerService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def list_workers(self) -> list[WorkerRecord]:
        async with self.sessions() as session:
            return list(await workers.all_workers(session))

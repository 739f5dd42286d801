"""Reading the registered workers."""

from __future__ import annotations

from app.domain.records import WorkerRecord
from app.store.unit_of_work import Store


class WorkerService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def list_workers(self) -> list[WorkerRecord]:
        async with self.store.read() as tx:
            return list(await tx.workers.all())

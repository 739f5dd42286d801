"""Answers of `GET /workers`."""

from __future__ import annotations

from pydantic import BaseModel

from app.domain.records import WorkerRecord
from app.schemas.common import Timestamp


class WorkerItem(BaseModel):
    id: str
    hostname: str
    pid: int
    started_at: Timestamp
    last_heartbeat: Timestamp

    @classmethod
    def of(cls, worker: WorkerRecord) -> WorkerItem:
        return cls(
            id=worker.id,
            hostname=worker.hostname,
            pid=worker.pid,
            started_at=worker.started_at,
            last_heartbeat=worker.last_heartbeat,
        )

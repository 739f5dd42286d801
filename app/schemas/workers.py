"""Answers of `GET /workers`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.domain.records import WorkerRecord
from app.schemas.common import Timestamp


class WorkerItem(BaseModel):
    id: str
    hostname: str
    pid: int
    started_at: Timestamp
    last_heartbeat: Timestamp
    claims_runs: bool = Field(
        description="it claims queued runs (a standalone worker, or an API process with its "
        "embedded worker), beside the runs it starts itself (`/execute`)"
    )

    @classmethod
    def of(cls, worker: WorkerRecord) -> WorkerItem:
        return cls(
            id=worker.id,
            hostname=worker.hostname,
            pid=worker.pid,
            started_at=worker.started_at,
            last_heartbeat=worker.last_heartbeat,
            claims_runs=worker.claims_runs,
        )

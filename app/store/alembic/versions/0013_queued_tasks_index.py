"""Ready tasks: the index that counts them holds only queued tasks.

Revision ID: 0013_queued_tasks_index
Revises: 0012_shared_fan_outs
Create Date: 2026-12-02

`task_runs` (status, available_at) becomes partial, `WHERE status = 'queued'`, on PostgreSQL
and SQLite (MariaDB keeps the whole index). Only the `ready_tasks` gauge reads it, always for
queued tasks. Whole, it also offered the planner a path to a run's pending tasks by status
alone, which PostgreSQL took while its statistics were stale (a new database's first
minute): every step's finish walked the pending tasks of every queued run, a cost that grew
with the queue. Partial, the planner cannot take it for those lookups, and the tasks that are
not queued, nearly all of them, are no longer in it.

The index is rebuilt in the upgrade's transaction: writes to `task_runs` wait for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_queued_tasks_index"
down_revision: str | Sequence[str] | None = "0012_shared_fan_outs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_task_runs_status_available_at"


def upgrade() -> None:
    queued = sa.text("status = 'queued'")
    op.drop_index(_INDEX, table_name="task_runs")
    op.create_index(
        _INDEX,
        "task_runs",
        ["status", "available_at"],
        postgresql_where=queued,
        sqlite_where=queued,
    )


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="task_runs")
    op.create_index(_INDEX, "task_runs", ["status", "available_at"])

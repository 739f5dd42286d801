"""Workers say whether they claim queued runs.

Revision ID: 0014_workers_claim_runs
Revises: 0013_queued_tasks_index
Create Date: 2026-12-02

`workers.claims_runs`: the process runs a claim loop (a standalone worker, or an API process
with its embedded worker), rather than only the runs it starts itself. Each claiming process
counts the live ones on its heartbeat and spaces its claims by that many claim intervals, so
that however many workers share a queue, it is claimed as often as by one, in batches as large
(`app/worker/claim_loop.py`). Rows of processes that registered before the upgrade claim
nothing as far as the count goes, until they register again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_workers_claim_runs"
down_revision: str | Sequence[str] | None = "0013_queued_tasks_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "workers",
        sa.Column("claims_runs", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("workers", "claims_runs")

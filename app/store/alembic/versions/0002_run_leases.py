"""Run leases: the worker executing a run, and until when it holds it.

Revision ID: 0002_run_leases
Revises: 0001_initial
Create Date: 2026-11-22

A run is executed by one worker at a time; `lease_owner` names it and `lease_expires_at` says
until when. The worker renews the lease while it runs the run; once it expires (the worker
died or stalled), any worker may take the run over (docs/architecture.md, "Leases").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store.types import UTCDateTime

revision: str = "0002_run_leases"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("flow_runs") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", UTCDateTime, nullable=True))
        batch.create_index(op.f("ix_flow_runs_lease_owner"), ["lease_owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_index(op.f("ix_flow_runs_lease_owner"))
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")

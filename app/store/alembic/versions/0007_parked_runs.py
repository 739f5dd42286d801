"""Parked runs and signals (DESIGN.md section 9).

Revision ID: 0007_parked_runs
Revises: 0006_run_forks
Create Date: 2026-12-01

A parked run stays `running` with no lease owner and `lease_expires_at` at the time it wakes
(a far date when only a signal wakes it): the claim takes it again then, as it takes a run
whose worker died, now walking an index on `(status, lease_expires_at)` that stops at the
first run not yet due, however many runs are parked. `run_signals` keeps the signals sent to a
run until a waiting step takes one (`taken_step`, `taken_index`): a signal sent early waits
there, and one taken is taken once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store.types import BigId, JsonDocument, UTCDateTime

revision: str = "0007_parked_runs"
down_revision: str | Sequence[str] | None = "0006_run_forks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_flow_runs_status_lease_expires_at"), "flow_runs", ["status", "lease_expires_at"]
    )
    op.create_table(
        "run_signals",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("payload", JsonDocument, nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.Column("taken_step", sa.String(128), nullable=True),
        sa.Column("taken_index", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_signals")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["flow_runs.id"],
            name=op.f("fk_run_signals_run_id_flow_runs"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_run_signals_run_id_name_id"), "run_signals", ["run_id", "name", "id"])


def downgrade() -> None:
    # The table takes its index along (MariaDB refuses to drop an index a foreign key needs).
    op.drop_table("run_signals")
    op.drop_index(op.f("ix_flow_runs_status_lease_expires_at"), table_name="flow_runs")

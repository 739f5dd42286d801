"""Schedules: cron ticks that start runs of a flow (DESIGN.md section 9, "Schedules").

Revision ID: 0008_schedules
Revises: 0007_parked_runs
Create Date: 2026-12-01

One row per schedule, made by the API (`origin` "api") or declared by a version's
`schedules:` ("definition": replaced when the next version is registered). `next_fire_at` is
the tick a row waits for, null while it is disabled; its index is the scheduler's path to the
due rows, which it takes `FOR UPDATE SKIP LOCKED` (docs/architecture.md, "Schedules").
`last_run_id` has no foreign key: retention may delete that run before the next tick.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store.types import JsonDocument, UTCDateTime

revision: str = "0008_schedules"
down_revision: str | Sequence[str] | None = "0007_parked_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("flow_name", sa.String(64), nullable=False),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("inputs", JsonDocument, nullable=False),
        sa.Column("overlap", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("next_fire_at", UTCDateTime(), nullable=True),
        sa.Column("last_fired_at", UTCDateTime(), nullable=True),
        sa.Column("last_run_id", sa.String(36), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
        sa.ForeignKeyConstraint(
            ["flow_name"],
            ["flows.name"],
            name=op.f("fk_schedules_flow_name_flows"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_schedules_created_by_users")
        ),
    )
    op.create_index(op.f("ix_schedules_next_fire_at"), "schedules", ["next_fire_at"])
    op.create_index(
        op.f("ix_schedules_flow_name_created_at"), "schedules", ["flow_name", "created_at"]
    )
    op.create_index(op.f("ix_schedules_created_by"), "schedules", ["created_by"])


def downgrade() -> None:
    # The table takes its indexes along (MariaDB refuses to drop an index a foreign key needs).
    op.drop_table("schedules")

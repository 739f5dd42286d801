"""The store's four tables: flow definitions, runs, their tasks, and workers.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22

Written by hand from the models (app/store/models.py). Column types come from app.store.types,
never a dialect's own, so models and migrations cannot drift; every constraint and index is
named as the models' naming convention names it (op.f: the name is final, not re-derived).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store.types import BigId, JsonDocument, LongText, UTCDateTime

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flow_definitions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", JsonDocument, nullable=False),
        sa.Column("source", LongText, nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_definitions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_flow_definitions_name_version")),
    )

    op.create_table(
        "flow_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("flow_name", sa.String(64), nullable=False),
        sa.Column("definition_id", BigId, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("inputs", JsonDocument, nullable=False),
        sa.Column("outputs", JsonDocument, nullable=True),
        sa.Column("error", JsonDocument, nullable=True),
        sa.Column("remaining_steps", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_runs")),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["flow_definitions.id"],
            name=op.f("fk_flow_runs_definition_id_flow_definitions"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_flow_runs_idempotency_key")),
    )
    op.create_index(op.f("ix_flow_runs_definition_id"), "flow_runs", ["definition_id"])
    op.create_index(
        op.f("ix_flow_runs_flow_name_created_at"), "flow_runs", ["flow_name", "created_at"]
    )
    op.create_index(op.f("ix_flow_runs_status_created_at"), "flow_runs", ["status", "created_at"])
    op.create_index(op.f("ix_flow_runs_created_at_id"), "flow_runs", ["created_at", "id"])

    op.create_table(
        "task_runs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("step_id", sa.String(128), nullable=False),
        sa.Column("task_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("inputs", JsonDocument, nullable=True),
        sa.Column("outputs", JsonDocument, nullable=True),
        sa.Column("error", JsonDocument, nullable=True),
        sa.Column("available_at", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_runs")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["flow_runs.id"],
            name=op.f("fk_task_runs_run_id_flow_runs"),
            ondelete="CASCADE",
        ),
        # Its leading run_id also serves the foreign key (MariaDB needs an index there).
        sa.UniqueConstraint(
            "run_id", "step_id", "task_index", name=op.f("uq_task_runs_run_id_step_id_task_index")
        ),
    )
    # The claim query's path to ready work.
    op.create_index(
        op.f("ix_task_runs_status_available_at"), "task_runs", ["status", "available_at"]
    )

    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("last_heartbeat", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints; dropping an index first would fail on
    # MariaDB, where a foreign key needs its index. Children before parents.
    op.drop_table("workers")
    op.drop_table("task_runs")
    op.drop_table("flow_runs")
    op.drop_table("flow_definitions")

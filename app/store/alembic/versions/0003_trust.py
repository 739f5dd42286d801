"""Trust: users, API keys and sessions, flows with owners and shares, an audit log.

Revision ID: 0003_trust
Revises: 0002_run_leases
Create Date: 2026-12-01

The storage guide's model (DESIGN.md section 7): users own flows (`flows`, one row per name,
whose versions stay in `flow_definitions`), flows are shared with users with a permission,
versions record who registered them and why, runs record who started them, users have
settings, and changes to users, keys and shares are written to `audit_log`.

Existing data is kept: when flows exist already, a bootstrap administrator `admin` is created
and owns them, and is recorded as having registered their versions and started their runs. It
has no key and no password: `python -m app keys create admin` gives it one.

An idempotency key now repeats a request of the same caller on the same flow only, so its
unique constraint covers (key, flow, caller).

`service_secrets` gets one random value, the key that signs list cursors, so that every
process of the service signs and checks them alike.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from app.store.types import BigId, JsonDocument, UTCDateTime

revision: str = "0003_trust"
down_revision: str | Sequence[str] | None = "0002_run_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOOTSTRAP_ADMIN = "admin"


def upgrade() -> None:
    _create_tables()
    now = datetime.now(UTC)
    bind = op.get_bind()
    bind.execute(
        sa.table(
            "service_secrets",
            sa.column("name", sa.String),
            sa.column("value", sa.String),
            sa.column("created_at", UTCDateTime()),
        ).insert(),
        [{"name": "cursor_key", "value": secrets.token_hex(32), "created_at": now}],
    )
    admin_id = _adopt_existing_flows(now)

    with op.batch_alter_table("flow_definitions") as batch:
        batch.add_column(sa.Column("created_by", sa.String(36), nullable=True))
        batch.add_column(sa.Column("change_notes", sa.Text(), nullable=True))
        batch.create_index(op.f("ix_flow_definitions_created_by"), ["created_by"])
        batch.create_foreign_key(
            op.f("fk_flow_definitions_name_flows"), "flows", ["name"], ["name"], ondelete="CASCADE"
        )
        batch.create_foreign_key(
            op.f("fk_flow_definitions_created_by_users"), "users", ["created_by"], ["id"]
        )
    with op.batch_alter_table("flow_runs") as batch:
        batch.add_column(sa.Column("created_by", sa.String(36), nullable=True))
        batch.drop_constraint(op.f("uq_flow_runs_idempotency_key"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_flow_runs_idempotency_key_flow_name_created_by"),
            ["idempotency_key", "flow_name", "created_by"],
        )
        batch.create_index(op.f("ix_flow_runs_created_by"), ["created_by"])
        batch.create_foreign_key(
            op.f("fk_flow_runs_created_by_users"), "users", ["created_by"], ["id"]
        )
    if admin_id is not None:
        for table in ("flow_definitions", "flow_runs"):
            bind.execute(
                sa.table(table, sa.column("created_by", sa.String)).update(),
                {"created_by": admin_id},
            )


def _create_tables() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("email", sa.String(255), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "user_settings",
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("settings", JsonDocument, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_settings")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_settings_user_id_users"),
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", JsonDocument, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"
        ),
    )
    op.create_index(op.f("ix_api_keys_user_id"), "api_keys", ["user_id"])
    op.create_table(
        "flows",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flows")),
        sa.UniqueConstraint("name", name=op.f("uq_flows_name")),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_flows_owner_id_users")),
    )
    op.create_index(op.f("ix_flows_owner_id"), "flows", ["owner_id"])
    op.create_table(
        "flow_shares",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("flow_id", BigId, nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("permission", sa.String(8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_shares")),
        # Its leading flow_id also serves the foreign key (MariaDB needs an index there).
        sa.UniqueConstraint("flow_id", "user_id", name=op.f("uq_flow_shares_flow_id_user_id")),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name=op.f("fk_flow_shares_flow_id_flows"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_flow_shares_user_id_users"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_flow_shares_user_id"), "flow_shares", ["user_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("details", JsonDocument, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "service_secrets",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_service_secrets")),
    )


def _adopt_existing_flows(now: datetime) -> str | None:
    """A `flows` row for each flow already registered, owned by a new bootstrap admin; the
    admin's id, or None when there was nothing to adopt."""
    bind = op.get_bind()
    definitions = sa.table(
        "flow_definitions",
        sa.column("name", sa.String),
        sa.column("version", sa.Integer),
        sa.column("description", sa.Text),
        sa.column("created_at", UTCDateTime()),
    )
    names = bind.execute(
        sa.select(
            definitions.c.name,
            sa.func.min(definitions.c.created_at),
            sa.func.max(definitions.c.created_at),
        ).group_by(definitions.c.name)
    ).all()
    if not names:
        return None
    admin_id = str(uuid.uuid4())
    bind.execute(
        sa.table(
            "users",
            sa.column("id", sa.String),
            sa.column("username", sa.String),
            sa.column("is_admin", sa.Boolean),
            sa.column("created_at", UTCDateTime()),
        ).insert(),
        [{"id": admin_id, "username": BOOTSTRAP_ADMIN, "is_admin": True, "created_at": now}],
    )
    latest_description = {
        name: description
        for name, _, description in bind.execute(
            sa.select(
                definitions.c.name, definitions.c.version, definitions.c.description
            ).order_by(definitions.c.name, definitions.c.version)
        ).all()
    }
    bind.execute(
        sa.table(
            "flows",
            sa.column("name", sa.String),
            sa.column("owner_id", sa.String),
            sa.column("is_public", sa.Boolean),
            sa.column("description", sa.Text),
            sa.column("created_at", UTCDateTime()),
            sa.column("updated_at", UTCDateTime()),
        ).insert(),
        [
            {
                "name": name,
                "owner_id": admin_id,
                "is_public": False,
                "description": latest_description.get(name) or "",
                "created_at": first or now,
                "updated_at": last or now,
            }
            for name, first, last in names
        ],
    )
    return admin_id


def downgrade() -> None:
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_constraint(op.f("fk_flow_runs_created_by_users"), type_="foreignkey")
        batch.drop_index(op.f("ix_flow_runs_created_by"))
        batch.drop_constraint(
            op.f("uq_flow_runs_idempotency_key_flow_name_created_by"), type_="unique"
        )
        batch.create_unique_constraint(op.f("uq_flow_runs_idempotency_key"), ["idempotency_key"])
        batch.drop_column("created_by")
    with op.batch_alter_table("flow_definitions") as batch:
        batch.drop_constraint(op.f("fk_flow_definitions_created_by_users"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_flow_definitions_name_flows"), type_="foreignkey")
        batch.drop_index(op.f("ix_flow_definitions_created_by"))
        batch.drop_column("change_notes")
        batch.drop_column("created_by")
    for table in (
        "service_secrets",
        "audit_log",
        "flow_shares",
        "flows",
        "api_keys",
        "user_settings",
        "users",
    ):
        op.drop_table(table)

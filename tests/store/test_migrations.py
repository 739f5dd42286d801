"""Alembic owns the schema: the migrations build what the models describe, on all three databases.

Each test runs on SQLite, PostgreSQL and MariaDB (the `store_url` / `migrated_store_url`
fixtures), through the service's own engine.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, func, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store import migrations
from app.store.database import session_factory
from app.store.migrations import VERSIONS, alembic_config, downgrade, upgrade, upgrade_url
from app.store.models import Base, FlowDefinitionRow, FlowRunRow, TaskRunRow, WorkerRow
from tests.databases import fresh_store_database, store_engine
from tests.store.samples import add_owner_and_flow

STORE_TABLES = {
    "flow_definitions",
    "flow_runs",
    "task_runs",
    "workers",
    "users",
    "user_settings",
    "api_keys",
    "flows",
    "flow_shares",
    "audit_log",
    "service_secrets",
    "task_logs",
    "run_events",
    "run_signals",
    "schedules",
    "concurrency_keys",
    "fan_outs",
}
HEAD = "0014_workers_claim_runs"
REPO_ROOT = Path(__file__).resolve().parents[2]  # where alembic.ini is
T0_NAIVE = datetime(2026, 1, 1)  # as SQLite and MariaDB keep UTC; PostgreSQL reads it as UTC


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    return set(names) - {"alembic_version"}


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def flow_definition(name: str = "Greeter", **fields: Any) -> FlowDefinitionRow:
    values: dict[str, Any] = {
        "name": name,
        "version": 1,
        "definition": {"flow": name, "steps": []},
        "source": f"flow: {name}\nsteps: []\n",
        "format": "yaml",
        "checksum": "0" * 64,
        "description": "",
        "created_at": datetime.now(UTC),
    }
    return FlowDefinitionRow(**(values | fields))


async def test_upgrade_from_inside_the_event_loop_creates_the_four_tables(store_url: str) -> None:
    async with store_engine(store_url) as engine:
        await upgrade(engine)

        assert await table_names(engine) == STORE_TABLES
        assert await current_revision(engine) == HEAD


async def test_upgrading_an_up_to_date_database_changes_nothing(migrated_store_url: str) -> None:
    async with store_engine(migrated_store_url) as engine:
        async with session_factory(engine)() as session, session.begin():
            await add_owner_and_flow(session, "Greeter")
            session.add(flow_definition())

        await upgrade(engine)

        async with session_factory(engine)() as session:
            count = await session.scalar(select(func.count()).select_from(FlowDefinitionRow))
        assert count == 1
        assert await current_revision(engine) == HEAD


async def test_downgrade_to_base_removes_the_tables_and_upgrade_builds_them_again(
    store_url: str,
) -> None:
    async with store_engine(store_url) as engine:
        await upgrade(engine)

        await downgrade(engine)
        assert await table_names(engine) == set()
        assert await current_revision(engine) is None

        await upgrade(engine)
        assert await table_names(engine) == STORE_TABLES
        assert await current_revision(engine) == HEAD


async def test_models_and_migrations_agree(migrated_store_url: str) -> None:
    async with store_engine(migrated_store_url) as engine, engine.connect() as connection:
        differences = await connection.run_sync(schema_differences)

    assert differences == []


async def test_alembic_command_upgrades_the_database_named_by_database_url(
    store_url: str,
) -> None:
    scheme, _, rest = store_url.partition("://")
    plain_url = f"{scheme.split('+')[0]}://{rest}"  # as an operator writes it: no driver named
    environment = os.environ | {"DATABASE_URL": plain_url}
    alembic = Path(sys.executable).with_name("alembic")

    process = await asyncio.create_subprocess_exec(
        str(alembic),
        "upgrade",
        "head",
        cwd=REPO_ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)

    assert process.returncode == 0, output.decode()
    async with store_engine(store_url) as engine:
        assert await table_names(engine) == STORE_TABLES
        assert await current_revision(engine) == HEAD


def test_upgrade_url_migrates_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    upgrade_url(f"sqlite:///{tmp_path / 'elsewhere.db'}")

    async def check() -> None:
        async with store_engine(f"sqlite+aiosqlite:///{tmp_path / 'elsewhere.db'}") as engine:
            assert await table_names(engine) == STORE_TABLES

    asyncio.run(check())


async def test_timezone_aware_datetimes_come_back_as_the_same_instant_in_utc(
    migrated_store_url: str,
) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    started = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=india)
    heartbeat = datetime(2026, 3, 29, 1, 30, 15, 999999, tzinfo=UTC)
    async with store_engine(migrated_store_url) as engine:
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            session.add(
                WorkerRow(
                    id="w1", hostname="h", pid=1, started_at=started, last_heartbeat=heartbeat
                )
            )

        async with sessions() as session:
            worker = await session.get_one(WorkerRow, "w1")
            stale = await session.scalar(
                select(WorkerRow.id).where(
                    WorkerRow.last_heartbeat < heartbeat + timedelta(microseconds=1)
                )
            )
            fresh = await session.scalar(
                select(WorkerRow.id).where(WorkerRow.last_heartbeat < heartbeat)
            )

    assert worker.started_at == started
    assert worker.started_at.tzinfo is UTC
    assert worker.started_at.microsecond == 123456
    assert worker.last_heartbeat == heartbeat
    # Comparisons in SQL (the lease queue's) see microseconds too.
    assert (stale, fresh) == ("w1", None)


async def test_json_documents_round_trip(migrated_store_url: str) -> None:
    document = {
        "flow": "Grüße",
        "steps": [{"set": {"id": "s", "values": {"emoji": "🚀", "cjk": "流れ"}}}],
        "nested": {"list": [1, 2.5, None, True, False, {"deep": ["x", {"y": []}]}]},
        "empty": {},
    }
    source = "flow: Grüße\n# 🚀 流れ\n"
    async with store_engine(migrated_store_url) as engine:
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            row = flow_definition("Grüße", definition=document, source=source)
            await add_owner_and_flow(session, "Grüße")
            session.add(row)
        async with sessions() as session:
            stored = await session.get_one(FlowDefinitionRow, row.id)

    assert stored.definition == document
    assert stored.source == source


async def add_run_with_a_task(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        definition = flow_definition()
        await add_owner_and_flow(session, "Greeter")
        session.add(definition)
        await session.flush()
        session.add(
            FlowRunRow(
                id="r1",
                flow_name=definition.name,
                definition_id=definition.id,
                status="queued",
                inputs={},
                remaining_steps=1,
                created_at=datetime.now(UTC),
            )
        )
        await session.flush()
        session.add(TaskRunRow(run_id="r1", step_id="greet", status="pending"))


async def count_runs_and_tasks(engine: AsyncEngine) -> tuple[int | None, int | None]:
    async with session_factory(engine)() as session:
        runs = await session.scalar(select(func.count()).select_from(FlowRunRow))
        tasks = await session.scalar(select(func.count()).select_from(TaskRunRow))
    return runs, tasks


async def test_deleting_a_definition_deletes_its_runs_and_their_tasks(store_url: str) -> None:
    async with store_engine(store_url) as engine:
        # Migrating on the service's engine leaves its connections enforcing foreign keys.
        await upgrade(engine)
        await add_run_with_a_task(engine)

        async with session_factory(engine)() as session, session.begin():
            await session.execute(delete(FlowDefinitionRow))

        assert await count_runs_and_tasks(engine) == (0, 0)


REBUILD_FLOW_DEFINITIONS = """
import sqlalchemy as sa
from alembic import op

revision = "0099_rebuild_flow_definitions"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("flow_definitions", recreate="always") as batch:
        batch.add_column(sa.Column("probe", sa.Integer(), nullable=True))


def downgrade():
    pass
"""


async def test_a_later_migration_rebuilding_a_parent_table_keeps_its_children_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite alters a table by copy, drop and rename; dropping a parent table with foreign keys
    # enforced would cascade-delete every run.
    extra_versions = tmp_path / "versions"
    extra_versions.mkdir()
    (extra_versions / "0099_rebuild_flow_definitions.py").write_text(
        REBUILD_FLOW_DEFINITIONS.replace("{HEAD}", HEAD)
    )

    def config_with_the_rebuild(url: str | None = None) -> Config:
        config = alembic_config(url)
        config.set_main_option("version_locations", f"{VERSIONS}{os.pathsep}{extra_versions}")
        return config

    async with store_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}") as engine:
        await upgrade(engine, HEAD)
        await add_run_with_a_task(engine)
        monkeypatch.setattr(migrations, "alembic_config", config_with_the_rebuild)

        await upgrade(engine)

        assert await current_revision(engine) == "0099_rebuild_flow_definitions"
        assert await count_runs_and_tasks(engine) == (1, 1)


async def test_flows_registered_before_users_existed_are_adopted_by_a_bootstrap_admin(
    store_url: str,
) -> None:
    async with store_engine(store_url) as engine:
        await upgrade(engine, "0002_run_leases")
        async with engine.begin() as connection:
            for version, description in ((1, "first"), (2, "latest")):
                await connection.execute(
                    text(
                        "INSERT INTO flow_definitions (name, version, definition, source, format,"
                        " checksum, description, created_at) VALUES ('Old', :version, '{}', '',"
                        " 'yaml', '', :description, :at)"
                    ),
                    {"version": version, "description": description, "at": T0_NAIVE},
                )
            await connection.execute(
                text(
                    "INSERT INTO flow_runs (id, flow_name, definition_id, status, inputs,"
                    " remaining_steps, idempotency_key, created_at) SELECT 'r1', 'Old', id,"
                    " 'completed', '{}', 0, 'k', :at FROM flow_definitions WHERE version = 2"
                ),
                {"at": T0_NAIVE},
            )

        await upgrade(engine)

        async with engine.connect() as connection:
            admin = (
                await connection.execute(text("SELECT id, username, is_admin FROM users"))
            ).one()
            flow = (await connection.execute(text("SELECT owner_id, description FROM flows"))).one()
            creators = set(
                (await connection.execute(text("SELECT created_by FROM flow_definitions")))
                .scalars()
                .all()
            )
            starter = (await connection.execute(text("SELECT created_by FROM flow_runs"))).scalar()
    assert (admin.username, bool(admin.is_admin)) == ("admin", True)
    assert (flow.owner_id, flow.description) == (admin.id, "latest")
    assert creators == {admin.id}
    assert starter == admin.id


START_RUN = "flow_manager.start_run(text,jsonb,text,integer,integer,text)"
DESCRIBED_SOURCE = """\
flow: Old
inputs:
  n: {type: integer, required: true}
steps:
  - task: NotLoadedHere
    id: custom
  - log: {id: done, message: "${inputs.n}"}
"""


async def test_versions_stored_before_are_described_for_starting_runs_from_sql(
    store_url: str,
) -> None:
    async with store_engine(store_url) as engine:
        await upgrade(engine, "0010_run_priority")
        async with session_factory(engine)() as session, session.begin():
            owner = await add_owner_and_flow(session, "Old")
            for version, source in ((1, DESCRIBED_SOURCE), (2, "flow: [not, a, flow")):
                await session.execute(
                    text(
                        "INSERT INTO flow_definitions (name, version, definition, source, format,"
                        " checksum, description, created_at, created_by) VALUES ('Old',"
                        " :version, '{}', :source, 'yaml', '', '', :at, :owner)"
                    ),
                    {"version": version, "source": source, "at": T0_NAIVE, "owner": owner},
                )

        await upgrade(engine)

        async with session_factory(engine)() as session:
            rows = await session.execute(
                select(FlowDefinitionRow.version, FlowDefinitionRow.start_spec)
            )
            described: dict[int, Any] = dict(rows.all())
    assert described[1]["steps"] == ["custom", "done"]
    assert described[1]["inputs"] == [
        {"name": "n", "type": "integer", "required": True, "has_default": False, "default": None}
    ]
    assert described[2] is None  # unreadable: start_run refuses it, the upgrade goes on


async def test_start_run_is_installed_on_postgresql_and_removed_by_its_downgrade(
    tmp_path: Path,
) -> None:
    async def installed(engine: AsyncEngine) -> tuple[bool, bool]:
        async with engine.connect() as connection:
            function = await connection.scalar(text(f"SELECT to_regprocedure('{START_RUN}')"))
            columns = await connection.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("flow_definitions")}
            )
        return function is not None, "start_spec" in columns

    async with fresh_store_database("postgresql", tmp_path) as url, store_engine(url) as engine:
        await upgrade(engine)
        assert await installed(engine) == (True, True)

        await downgrade(engine, "0010_run_priority")
        assert await installed(engine) == (False, False)
        async with engine.connect() as connection:
            schemas = await connection.scalar(
                text("SELECT count(*) FROM pg_namespace WHERE nspname = 'flow_manager'")
            )
        assert schemas == 0

        await upgrade(engine)
        assert await installed(engine) == (True, True)

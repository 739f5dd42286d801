"""The settings, turned into the values the inner layers take: what a definition may ask for,
what a run may keep, what flows may reach and how their pools are sized.

The engine, the tasks and the connections never read the service's settings themselves (they
serve library use too): the service builds their values here and hands them over.
"""

from __future__ import annotations

from app.connections.destinations import DestinationPolicy, StoreDatabase
from app.connections.limits import ConnectionLimits
from app.connections.postgres_targets import PostgresTarget
from app.dsl.limits import DefinitionLimits
from app.engine.limits import RunLimits
from app.settings import Settings


def definition_limits(settings: Settings) -> DefinitionLimits:
    return DefinitionLimits(
        max_steps=settings.max_steps,
        max_step_timeout=settings.max_step_timeout_seconds,
        max_retry_delay=settings.max_retry_delay_seconds,
        max_durable_wait=settings.max_durable_wait_seconds,
    )


def run_limits(settings: Settings) -> RunLimits:
    """As the service runs flows: an attempt holds a worker slot, so a step without `timeout`
    runs at most MAX_STEP_TIMEOUT_SECONDS."""
    return RunLimits(
        max_step_output_bytes=settings.max_step_output_bytes,
        max_run_document_bytes=settings.max_run_document_bytes,
        max_fan_out=settings.max_fan_out,
        default_step_timeout=settings.max_step_timeout_seconds,
        max_task_log_bytes=settings.max_task_log_bytes,
        max_durable_wait_seconds=settings.max_durable_wait_seconds,
        shared_fan_out_min=settings.shared_fan_out_min,
    )


def destination_policy(settings: Settings, *, deny_private_networks: bool) -> DestinationPolicy:
    """What flows run by the service may reach (CONNECTION_ALLOWLIST, CONNECTION_ALLOW_STORE,
    CA_BUNDLE_DIR); `deny_private_networks` refuses non-public addresses when the list is
    empty."""
    return DestinationPolicy.build(
        settings.connection_allowlist,
        deny_private_networks=deny_private_networks,
        store=store_database(settings.database_url),
        allow_store=settings.connection_allow_store,
        ca_bundle_dir=settings.ca_bundle_dir,
    )


def store_database(database_url: str) -> StoreDatabase | None:
    """Where the service's own store is, when it is PostgreSQL (what a flow could reach)."""
    scheme, separator, rest = database_url.partition("://")
    if not separator or scheme.partition("+")[0] not in ("postgresql", "postgres"):
        return None
    target = PostgresTarget.parse("postgresql://" + rest)
    return StoreDatabase(target.hosts, target.database)


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        connect_timeout=settings.connection_connect_timeout,
        command_timeout=settings.connection_command_timeout,
        idle_seconds=settings.connection_idle_seconds,
        max_pool_size=settings.connection_max_pool_size,
        max_total=settings.connection_max_total,
    )

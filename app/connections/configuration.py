"""The service's destination policy and pool limits, from its settings."""

from __future__ import annotations

from app.connections.destinations import DestinationPolicy, StoreDatabase
from app.connections.limits import ConnectionLimits
from app.connections.postgres_targets import PostgresTarget
from app.settings import Settings


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

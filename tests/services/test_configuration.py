"""The settings as the service turns them into the inner layers' values: the engine's limits,
the destination policy and the pool limits."""

from __future__ import annotations

import shutil
from pathlib import Path

import certifi
import pydantic
import pytest

from app.connections.destinations import StoreDatabase
from app.connections.http import HttpConnection
from app.connections.limits import ConnectionLimits
from app.dsl.limits import DefinitionLimits
from app.engine.limits import RunLimits
from app.errors import InvalidConnectionError
from app.services.configuration import (
    connection_limits,
    definition_limits,
    destination_policy,
    run_limits,
)
from app.settings import Settings

STORE_URL = "postgresql+asyncpg://app:pw@db.internal:5432/flow_db"


def test_the_allowlist_is_a_comma_list_checked_at_start_up() -> None:
    settings = Settings(connection_allowlist=" api.example.com, 10.0.0.0/8 ,,*.corp:443")
    assert settings.connection_allowlist == ["api.example.com", "10.0.0.0/8", "*.corp:443"]

    with pytest.raises(pydantic.ValidationError, match="CONNECTION_ALLOWLIST entry 'a/b'"):
        Settings(connection_allowlist="ok.example, a/b")


def test_the_policy_carries_the_store_the_list_and_the_flag() -> None:
    settings = Settings(database_url=STORE_URL, connection_allowlist="10.0.0.0/8")

    policy = destination_policy(settings, deny_private_networks=True)

    assert policy.deny_private_networks
    assert [entry.text for entry in policy.allowlist] == ["10.0.0.0/8"]
    assert policy.store == StoreDatabase((("db.internal", 5432),), "flow_db")
    assert policy.guards_store
    assert not destination_policy(
        Settings(database_url=STORE_URL, connection_allow_store=True), deny_private_networks=False
    ).guards_store
    assert policy.ca_bundle_dir is None  # CA_BUNDLE_DIR unset: CA bundle paths refused


def test_the_limits_come_from_the_settings() -> None:
    settings = Settings(
        connection_connect_timeout=3,
        connection_command_timeout=30,
        connection_idle_seconds=60,
        connection_max_pool_size=40,
        connection_max_total=200,
    )

    assert connection_limits(settings) == ConnectionLimits(3, 30, 60, 40, 200)


def test_a_ca_bundle_is_accepted_only_inside_ca_bundle_dir(tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    shutil.copy(certifi.where(), bundles / "ca.pem")
    shutil.copy(certifi.where(), tmp_path / "outside.pem")
    unset = destination_policy(Settings(), deny_private_networks=False)
    configured = destination_policy(Settings(ca_bundle_dir=bundles), deny_private_networks=False)

    with pytest.raises(InvalidConnectionError, match="only when CA_BUNDLE_DIR is set"):
        HttpConnection("api", {"verify": str(bundles / "ca.pem")}, policy=unset)
    with pytest.raises(InvalidConnectionError, match="outside CA_BUNDLE_DIR"):
        HttpConnection("api", {"verify": str(bundles / ".." / "outside.pem")}, policy=configured)
    accepted = HttpConnection("api", {"verify": str(bundles / "ca.pem")}, policy=configured)
    assert accepted.settings.verify == str((bundles / "ca.pem").resolve())


def test_the_settings_reach_the_definition_and_run_limits() -> None:
    settings = Settings(
        _env_file=None,
        max_steps=7,
        max_step_timeout_seconds=90,
        max_retry_delay_seconds=30,
        max_step_output_bytes=2048,
        max_run_document_bytes=4096,
        max_fan_out=3,
        shared_fan_out_min=2,
    )

    assert definition_limits(settings) == DefinitionLimits(
        max_steps=7, max_step_timeout=90, max_retry_delay=30
    )
    assert run_limits(settings) == RunLimits(
        max_step_output_bytes=2048,
        max_run_document_bytes=4096,
        max_fan_out=3,
        default_step_timeout=90,
        shared_fan_out_min=2,
    )


def test_by_default_the_service_and_library_use_validate_alike() -> None:
    """A definition that validates in a test validates in the service; only the service
    bounds an attempt of a step without `timeout`."""
    settings = Settings(_env_file=None)

    assert definition_limits(settings) == DefinitionLimits()
    assert run_limits(settings).default_step_timeout == 86_400
    assert RunLimits().default_step_timeout is None

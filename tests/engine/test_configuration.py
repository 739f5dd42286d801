"""The engine's limits as the service sets them from its settings."""

from __future__ import annotations

from app.dsl.limits import DefinitionLimits
from app.engine.configuration import definition_limits, run_limits
from app.engine.limits import RunLimits
from app.settings import Settings


def test_the_settings_reach_the_definition_and_run_limits() -> None:
    settings = Settings(
        _env_file=None,
        max_steps=7,
        max_step_timeout_seconds=90,
        max_retry_delay_seconds=30,
        max_step_output_bytes=2048,
        max_run_document_bytes=4096,
        max_fan_out=3,
    )

    assert definition_limits(settings) == DefinitionLimits(
        max_steps=7, max_step_timeout=90, max_retry_delay=30
    )
    assert run_limits(settings) == RunLimits(
        max_step_output_bytes=2048,
        max_run_document_bytes=4096,
        max_fan_out=3,
        default_step_timeout=90,
    )


def test_by_default_the_service_and_library_use_validate_alike() -> None:
    """A definition that validates in a test validates in the service; only the service
    bounds an attempt of a step without `timeout`."""
    settings = Settings(_env_file=None)

    assert definition_limits(settings) == DefinitionLimits()
    assert run_limits(settings).default_step_timeout == 86_400
    assert RunLimits().default_step_timeout is None

"""The engine's limits, from the service's settings: what a definition may ask for, what a run
may keep, and how long an attempt may run."""

from __future__ import annotations

from app.dsl.limits import DefinitionLimits
from app.engine.limits import RunLimits
from app.settings import Settings


def definition_limits(settings: Settings) -> DefinitionLimits:
    return DefinitionLimits(
        max_steps=settings.max_steps,
        max_step_timeout=settings.max_step_timeout_seconds,
        max_retry_delay=settings.max_retry_delay_seconds,
    )


def run_limits(settings: Settings) -> RunLimits:
    """As the service runs flows: an attempt holds a worker slot, so a step without `timeout`
    runs at most MAX_STEP_TIMEOUT_SECONDS."""
    return RunLimits(
        max_step_output_bytes=settings.max_step_output_bytes,
        max_run_document_bytes=settings.max_run_document_bytes,
        max_fan_out=settings.max_fan_out,
        default_step_timeout=settings.max_step_timeout_seconds,
    )

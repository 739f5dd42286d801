"""What a definition may ask for: how many steps, and how long a step may run and wait.

The service sets them from its settings (MAX_STEPS, MAX_STEP_TIMEOUT_SECONDS,
MAX_RETRY_DELAY_SECONDS); library use gets the same defaults, so a definition that validates
in a test validates in the service.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86_400.0  # seconds


@dataclass(frozen=True)
class DefinitionLimits:
    # Steps per definition, handlers included: each is work at registration and a task row
    # per run.
    max_steps: int = 5_000
    # A step's `timeout` (and `defaults.timeout`), in seconds: an attempt holds a worker slot
    # while it runs.
    max_step_timeout: float = DAY
    # A retry's `delay` and `max_delay` (and `defaults.retry`'s), in seconds: longer is a
    # schedule, not a retry.
    max_retry_delay: float = DAY
    # A waiting step's `timeout` (`wait_for`): it holds no worker while it waits.
    max_durable_wait: float = 366 * DAY


DEFAULT_LIMITS = DefinitionLimits()

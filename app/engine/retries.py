"""When a failed attempt is retried, and after how long."""

from __future__ import annotations

import random

from app.dsl.models import RetryPolicy
from app.errors import ExpressionError, NonRetryableError


def is_retryable(error: BaseException, policy: RetryPolicy) -> bool:
    """Deterministic failures (bad expressions, NonRetryableError) are never retried;
    with `retry_on`, only errors whose type (or a base type) is listed are."""
    if isinstance(error, NonRetryableError | ExpressionError):
        return False
    if not policy.retry_on:
        return True
    return any(cls.__name__ in policy.retry_on for cls in type(error).__mro__)


def retry_delay(
    policy: RetryPolicy, failed_attempt: int, rng: random.Random | None = None
) -> float:
    """Seconds to wait after attempt number `failed_attempt` (1-based) failed.

    Exponential: delay * backoff^(n-1), capped at max_delay. With jitter the wait is drawn
    uniformly from [d/2, d] ("equal jitter"): retries of many runs spread out, yet never come
    back sooner than half the planned delay.
    """
    planned = min(policy.delay, policy.max_delay)
    for _ in range(failed_attempt - 1):  # a loop, not `**`, so a huge backoff cannot overflow
        planned = min(planned * policy.backoff, policy.max_delay)
    if not policy.jitter:
        return planned
    return (rng or random).uniform(planned / 2, planned)

"""The run rate limiter: a bucket per credential that refills at RUNS_PER_MINUTE."""

from __future__ import annotations

import pytest

from app.domain.access import USER_SCOPES, Caller
from app.errors import RateLimitedError
from app.services import limits
from app.services.limits import RunRateLimiter


def caller(key_id: str) -> Caller:
    return Caller("u", "ada", is_admin=False, scopes=USER_SCOPES, key_id=key_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("app.services.limits.time.monotonic", clock)
    return clock


def test_a_burst_up_to_the_limit_passes_and_the_next_waits_for_its_share(clock: Clock) -> None:
    limiter = RunRateLimiter(per_minute=60)
    for _ in range(60):
        limiter.take(caller("k1"))

    with pytest.raises(RateLimitedError) as refused:
        limiter.take(caller("k1"))

    assert refused.value.retry_after == pytest.approx(1.0)
    clock.now += 1.0
    limiter.take(caller("k1"))


def test_each_key_has_its_own_bucket(clock: Clock) -> None:
    limiter = RunRateLimiter(per_minute=1)
    limiter.take(caller("k1"))

    limiter.take(caller("k2"))
    with pytest.raises(RateLimitedError):
        limiter.take(caller("k1"))


def test_zero_means_no_limit(clock: Clock) -> None:
    limiter = RunRateLimiter(per_minute=0)

    for _ in range(10_000):
        limiter.take(caller("k1"))


def test_the_buckets_kept_are_bounded(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "TRACKED_CALLERS", 100)
    limiter = RunRateLimiter(per_minute=10)

    for n in range(1000):
        limiter.take(caller(f"k{n}"))

    assert len(limiter._buckets) <= 100


def test_the_anonymous_local_admin_is_not_limited(clock: Clock) -> None:
    limiter = RunRateLimiter(per_minute=1)
    local = Caller("u", "admin", is_admin=True, scopes=USER_SCOPES)

    for _ in range(100):
        limiter.take(local)

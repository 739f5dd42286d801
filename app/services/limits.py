"""How many runs one key may start: a token bucket per credential, in this process.

`RUNS_PER_MINUTE` runs a minute, with bursts of up to as many. The bucket lives in each
process (no round trip to a shared store on the path that starts runs): behind a load
balancer spreading requests over N API processes, a key may start up to N times as many.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.domain.access import Caller
from app.errors import RateLimitedError

TRACKED_CALLERS = 10_000  # buckets kept, at most; a full bucket is forgotten first


@dataclass
class _Bucket:
    tokens: float
    at: float  # monotonic time of the last refill


class RunRateLimiter:
    def __init__(self, per_minute: int) -> None:
        """`per_minute`: 0 for no limit."""
        self.per_minute = per_minute
        self._buckets: dict[str, _Bucket] = {}

    def take(self, caller: Caller, count: int = 1) -> None:
        """Count `count` runs started by the caller; RateLimitedError, with when to try again,
        when its bucket is empty. The anonymous local admin (authentication off, on loopback)
        holds no key: whoever runs the service on their machine is not limited."""
        if self.per_minute == 0 or caller.key_id is None:
            return
        key = caller.key_id
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room()
            bucket = self._buckets[key] = _Bucket(float(self.per_minute), now)
        rate = self.per_minute / 60.0
        bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens < count:
            retry_after = (count - bucket.tokens) / rate
            raise RateLimitedError(
                f"this key started {self.per_minute} runs in the last minute, the most "
                f"RUNS_PER_MINUTE allows; try again in {retry_after:.1f} s",
                retry_after=retry_after,
            )
        bucket.tokens -= count

    def _make_room(self) -> None:
        if len(self._buckets) < TRACKED_CALLERS:
            return
        now = time.monotonic()
        full_after = 60.0  # an untouched bucket is full again within a minute
        for key in [key for key, bucket in self._buckets.items() if now - bucket.at > full_after]:
            del self._buckets[key]
        if len(self._buckets) >= TRACKED_CALLERS:
            del self._buckets[next(iter(self._buckets))]

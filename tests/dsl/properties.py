"""Settings of the property-based tests (hypothesis): few examples, each bounded in time.

Under CI the examples are derived from each test's name (`derandomize`), so a run is
repeatable; on a developer's machine they are new each time, which is how such tests find
what nobody wrote down. No example database is kept (nothing is written to the tree).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

BOUNDED = settings(
    max_examples=150,
    deadline=500,  # ms per example: far above what one should take, so only a hang fails it
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
)

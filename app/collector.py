"""The garbage collector in a long-lived process of the service (API or worker)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Collections of the youngest generation start after this many more container objects were
# allocated than freed (CPython's default: 700). Nearly all of a request's or a run's objects
# are freed by reference counting as it ends, so the count only swings with the objects of the
# requests and runs in flight: at 700, 16 clients' requests crossed it ~250 times a second, each
# pass walking the live objects of every request in flight, 5% of the API's CPU; at 10,000 a
# benchmark of 4,000 requests made none. Cyclic garbage still triggers a pass once this many
# objects of it pile up: a few megabytes at most.
YOUNGEST_GENERATION_THRESHOLD = 10_000


@contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Keep what start-up built (modules, the app, pools, caches) out of the collector's sight,
    and collect the youngest generation less often (`YOUNGEST_GENERATION_THRESHOLD`).

    A full collection walked them all: 80 ms with every request stalled, the p99 of the
    benchmark under 16 clients. They live as long as the process anyway. Unfrozen at
    shutdown, and the thresholds restored, for the processes (tests) that start the service
    many times.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], YOUNGEST_GENERATION_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()

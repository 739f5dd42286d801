"""`Metrics`: the service's Prometheus metrics (DESIGN.md section 8), with prometheus-client.

Counters and histograms move where the work happens: runs in the `Runner`, attempts and tasks
in the engine's observer (`observer.py`), HTTP requests in the API's middleware, store
failures where the store translates them. What waits in the store (queued runs, ready tasks,
workers alive) is read at scrape time, bounded (`app/store/queries/gauges.py`).

Several processes: with `PROMETHEUS_MULTIPROC_DIR` set (before the process starts: the client
chooses its storage at import), every process writes its values to files there and any
process's `/metrics` answers the sum over all of them — the way to run several API processes
behind one port. Without it each process answers for itself, which is right when each
process is its own scrape target (`python -m app serve`, one process per address).

The hot path keeps its own map of label values to children: `labels()` takes a lock and
builds a key on every call; a dictionary hit does neither.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.domain.clock import utcnow
from app.domain.runs import RunStatus, TaskStatus
from app.errors import StoreUnavailableError
from app.store.unit_of_work import Store

PREFIX = "flow_manager"
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Counts read at scrape time stop here: the answer stays cheap however deep the queue is.
DEPTH_CAP = 10_000
# A worker is alive when it beat within this many of its intervals.
ALIVE_AFTER_BEATS = 3
# Runs take milliseconds to hours; steps alike.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, float("inf")
)  # fmt: skip
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR))


@dataclass(frozen=True)
class Scrape:
    """One answer of `/metrics`: the text and its content type."""

    body: bytes
    content_type: str = CONTENT_TYPE


class Metrics:
    def __init__(self, store: Store, heartbeat_seconds: float) -> None:
        self.store = store
        self.heartbeat_seconds = heartbeat_seconds
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs_started = Counter(
            f"{PREFIX}_runs_started", "Runs this process began to execute", ["flow"], registry=r
        )
        self.runs_finished = Counter(
            f"{PREFIX}_runs_finished",
            "Runs that ended: executed here to their end, or cancelled by a caller here",
            ["flow", "status"],
            registry=r,
        )
        self.run_duration = Histogram(
            f"{PREFIX}_run_duration_seconds",
            "From a run's start to its end, as executed here",
            ["flow"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.steps = Counter(
            f"{PREFIX}_steps",
            "Tasks (steps, and each element of a fan-out) by their outcome",
            ["task", "status"],
            registry=r,
        )
        self.step_duration = Histogram(
            f"{PREFIX}_step_duration_seconds",
            "A task's attempts, from its first start to its outcome (retry waits included)",
            ["task"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            f"{PREFIX}_attempts",
            "Attempts of tasks by how they ended",
            ["task", "status"],
            registry=r,
        )
        self.retries = Counter(
            f"{PREFIX}_retries", "Failed attempts followed by another", ["task"], registry=r
        )
        self.in_flight = Gauge(
            f"{PREFIX}_runs_in_flight",
            "Runs executing now (summed over live processes)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.takeovers = Counter(
            f"{PREFIX}_lease_takeovers",
            "Runs claimed after their worker's lease expired",
            registry=r,
        )
        self.runs_pruned = Counter(
            f"{PREFIX}_runs_pruned",
            "Finished runs deleted by retention (RUN_RETENTION_DAYS, a flow's `retention:`)",
            ["flow"],
            registry=r,
        )
        self.schedule_ticks = Counter(
            f"{PREFIX}_schedule_ticks",
            "Schedule ticks by outcome: started a run, skipped (overlap), failed (inputs, access)",
            ["flow", "outcome"],
            registry=r,
        )
        self.store_errors = Counter(
            f"{PREFIX}_store_errors",
            "Passing store failures (StoreUnavailableError)",
            registry=r,
        )
        self.http_requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        self._stop_counting_failures = store.on_passing_failure(self.store_errors.inc)

    def close(self) -> None:
        self._stop_counting_failures()
        if multiprocess_mode():  # this process's live gauges stop counting
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    # The hot path: children by label values, found with one dictionary lookup.

    def child(self, metric: Counter | Histogram, *values: str) -> Any:
        key = (id(metric), *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def run_launched(self) -> None:
        self.in_flight.inc()

    def run_started(self, flow: str) -> None:
        self.child(self.runs_started, flow).inc()

    def run_landed(self, flow: str | None, status: RunStatus | None, seconds: float) -> None:
        """A run stopped executing here: finished (`status`), or lost or handed over (None)."""
        self.in_flight.dec()
        if flow is not None and status is not None:
            self.child(self.runs_finished, flow, status.value).inc()
            self.child(self.run_duration, flow).observe(seconds)

    def run_cancelled(self, flow: str) -> None:
        """A run cancelled by a caller (here or wherever it ran): it finished, cancelled."""
        self.child(self.runs_finished, flow, RunStatus.CANCELLED.value).inc()

    def pruned(self, flow: str, count: int) -> None:
        """`count` finished runs of the flow were deleted by retention."""
        self.child(self.runs_pruned, flow).inc(count)

    def schedule_tick(self, flow: str, outcome: str) -> None:
        """A schedule's tick was handled: `started`, `skipped` or `failed`."""
        self.child(self.schedule_ticks, flow, outcome).inc()

    def attempt_ended(self, task: str, status: TaskStatus, retried: bool) -> None:
        self.child(self.attempts, task, status.value).inc()
        if retried:
            self.child(self.retries, task).inc()

    def task_settled(self, task: str, status: TaskStatus, seconds: float | None) -> None:
        self.child(self.steps, task, status.value).inc()
        if seconds is not None:
            self.child(self.step_duration, task).observe(seconds)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.child(self.http_requests, method, route, str(status)).inc()
        self.child(self.http_latency, method, route).observe(seconds)

    def serve_http(self, host: str, port: int) -> Callable[[], None]:
        """Serve this process's metrics on host:port from a thread of prometheus-client's (a
        standalone worker's, which has no API; the store's gauges are the API's to answer);
        what stops it."""
        registry = self.registry
        if multiprocess_mode():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        server, thread = start_http_server(port, addr=host, registry=registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join()

        return stop

    # The scrape.

    async def scrape(self) -> Scrape:
        """The metrics as Prometheus text: this process's (or, in multiprocess mode, every
        process's) and what the store holds now. A store that fails leaves its gauges out
        (and counts in `store_errors`): the process's own metrics matter most then."""
        if multiprocess_mode():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = CollectorRegistry()
            registry.register(_Registered(self.registry))
        with contextlib.suppress(StoreUnavailableError):
            registry.register(await self._store_now())
        return Scrape(generate_latest(registry))

    async def _store_now(self) -> _Snapshot:
        now = utcnow()
        alive_since = now - timedelta(seconds=self.heartbeat_seconds * ALIVE_AFTER_BEATS)
        async with self.store.read() as tx:
            depth = await tx.gauges.depth(now, alive_since, DEPTH_CAP)
        return _Snapshot(
            {
                "queued_runs": (
                    f"Runs waiting for a worker (counted up to {DEPTH_CAP})",
                    depth.queued_runs,
                ),
                "ready_tasks": (
                    f"Tasks queued and due (counted up to {DEPTH_CAP})",
                    depth.ready_tasks,
                ),
                "workers_alive": ("Processes whose heartbeat is recent", depth.workers_alive),
            }
        )


class _Snapshot(Collector):
    """Gauges of values read just before the scrape."""

    def __init__(self, values: dict[str, tuple[str, int]]) -> None:
        self.values = values

    def collect(self) -> Iterable[Metric]:
        for name, (documentation, value) in self.values.items():
            yield GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value)


class _Registered(Collector):
    """This process's own registry, beside the snapshot in one answer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()

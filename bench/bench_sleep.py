"""Durable sleeps on PostgreSQL: how late standalone workers wake parked runs, and their memory.

    .venv/bin/python -m bench.bench_sleep [--runs 10000] [--seconds 1] [--workers 2]
        [--concurrency 100]

A fresh database, migrated; one API process (EMBEDDED_WORKER=false, so it never executes a
run) queues --runs runs of `Sleepy` (`sleep: {seconds}`, then a `set`) through
`POST /flows/{name}/runs` from 16 clients, as fast as it can, and stops; then --workers
`python -m app worker --concurrency C` processes drain the queue. The workers start once
every run is queued (as bench_workers does), the harder case: they start the 10,000 sleeps
as fast as they can, so the sleeps fall due as fast as they were started, while the
workers are still starting the others; woken runs must be claimed and resumed on time all
the same.

For every run, its lateness: when the step after the sleep started, minus the sleep's due
time (the sleep task's `available_at`, which the workers' clock set: the same clock as the
steps' times). Prints p50, p99 and max of it, of the sleep step's end (the run woken and
resumed) and of the run's end; and the runs that finished more than 1.5 s after their due
time (the target: none). Every run is checked: completed, with the right output, its sleep
completed and never woken early. Each worker's RSS (VmRSS of /proc/<pid>/status, sampled
every 0.5 s): at its first sample, once it had started (the first run finished), its peak
and at the end of the drain, to show that memory stays flat however many runs park. The
exit status is 1 when a check failed or a run was late.

The machine should be otherwise idle: the load average before the drain is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from subprocess import Popen

import asyncpg

from app.store.migrations import upgrade_url
from bench.bench_api import postgres_database
from bench.bench_workers import (
    STALL_SECONDS,
    Flow,
    Poll,
    database_url,
    drain,
    dsn,
    queue_runs,
    report_logs,
    server_facts,
    start_workers,
    stop_workers,
    worker_logs,
)
from bench.cpu import process_seconds

LATE_SECONDS = 1.5  # the target: every run finishes within this of its sleep's due time
SAMPLE_SECONDS = 0.5
# Upper bounds of the lateness histogram's buckets, in seconds.
BUCKETS = (0.1, 0.25, 0.5, 1.0, LATE_SECONDS, 3.0, 10.0, float("inf"))


def sleepy(seconds: float) -> Flow:
    source = f"""
flow: Sleepy
inputs: {{n: integer}}
steps:
  - sleep: {{id: nap, seconds: {seconds}}}
  - set: {{id: after, values: {{x: "${{inputs.n + 1}}"}}}}
outputs: {{x: "${{after.x}}"}}
"""
    return Flow(
        "sleep", "Sleepy", source, "(r.outputs->>'x')::bigint = (r.inputs->>'n')::bigint + 1"
    )


# --- Memory of the workers ----------------------------------------------------------------------


@dataclass
class Memory:
    """One worker's RSS samples (kB) and the seconds since launch each was taken."""

    pid: int
    samples: list[tuple[float, int]] = field(default_factory=list)
    cpu_seconds: float = 0.0  # user + system, at the last sample

    def at(self, moment: float) -> int:
        """The first sample taken at `moment` or after (the last one if none)."""
        return next((kb for taken, kb in self.samples if taken >= moment), self.samples[-1][1])


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


async def sample_memory(workers: Sequence[Popen[bytes]], memories: list[Memory]) -> None:
    """Sample every worker's RSS every SAMPLE_SECONDS until cancelled."""
    launched = time.monotonic()
    memories.extend(Memory(worker.pid) for worker in workers)
    while True:
        for memory in memories:
            kb = rss_kb(memory.pid)
            if kb is not None:
                memory.samples.append((time.monotonic() - launched, kb))
                memory.cpu_seconds = process_seconds(memory.pid) or memory.cpu_seconds
        await asyncio.sleep(SAMPLE_SECONDS)


# --- Lateness of the runs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Lateness:
    """Seconds after their sleep's due time, one per run, sorted."""

    step: list[float]  # the step after the sleep started
    woken: list[float]  # the sleep step ended (its run woken and resumed)
    finished: list[float]  # the run finished
    by_due: list[float]  # the run finished, in the order of the due times

    def late(self) -> int:
        return sum(1 for seconds in self.finished if seconds > LATE_SECONDS)


@dataclass(frozen=True)
class Measured:
    lateness: Lateness
    started: float  # seconds from the workers' launch to the first run's start
    wall: float  # seconds from the workers' launch to the last run's end
    due_span: float  # seconds from the first due time to the last
    problems: tuple[str, ...]


LATENESS = """
SELECT extract(epoch FROM a.started_at - s.available_at)::float8,
    extract(epoch FROM s.finished_at - s.available_at)::float8,
    extract(epoch FROM r.finished_at - s.available_at)::float8,
    s.available_at
FROM flow_runs r
JOIN task_runs s ON s.run_id = r.id AND s.step_id = 'nap' AND s.task_index = 0
JOIN task_runs a ON a.run_id = r.id AND a.step_id = 'after' AND a.task_index = 0
WHERE r.status = 'completed' AND s.status = 'completed' AND a.status = 'completed'
    AND s.available_at IS NOT NULL AND a.started_at IS NOT NULL
    AND {correct}
"""


async def measured(name: str, flow: Flow, runs: int, launched: float) -> Measured:
    connection = await asyncpg.connect(dsn(name))
    try:
        statuses = dict(
            await connection.fetch("SELECT status, count(*) FROM flow_runs GROUP BY status")
        )
        rows = await connection.fetch(LATENESS.format(correct=flow.correct))
        first_start, last_end, first_due, last_due = await connection.fetchrow(
            "SELECT extract(epoch FROM min(r.started_at))::float8,"
            " extract(epoch FROM max(r.finished_at))::float8,"
            " extract(epoch FROM min(s.available_at))::float8,"
            " extract(epoch FROM max(s.available_at))::float8"
            " FROM flow_runs r JOIN task_runs s ON s.run_id = r.id AND s.step_id = 'nap'"
        )
        errors = await connection.fetch(
            "SELECT error->>'type' AS type, left(error->>'message', 200) AS message, count(*)"
            " FROM flow_runs WHERE status <> 'completed' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5"
        )
    finally:
        await connection.close()
    step, woken, finished = (sorted(row[column] for row in rows) for column in range(3))
    by_due = [row[2] for row in sorted(rows, key=lambda row: row[3])]
    lateness = Lateness(step, woken, finished, by_due)
    problems: list[str] = []
    if statuses != {"completed": runs}:
        problems.append(f"run statuses {statuses}, expected {{'completed': {runs}}}")
    if len(rows) != runs:
        problems.append(f"{runs - len(rows)} runs without a completed sleep and right output")
    early = sum(1 for seconds in lateness.woken if seconds < 0)
    if early:
        problems.append(f"{early} sleeps ended before their due time")
    problems += [f"{count} x {kind}: {message}" for kind, message, count in errors]
    if lateness.late():
        problems.append(
            f"{lateness.late()} runs finished more than {LATE_SECONDS} s after their due time"
        )
    return Measured(
        lateness,
        started=(first_start or launched) - launched,
        wall=(last_end or launched) - launched,
        due_span=(last_due or 0.0) - (first_due or 0.0),
        problems=tuple(problems),
    )


# --- The bench ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    queued_per_second: float
    poll: Poll
    memories: list[Memory]
    runs: Measured


async def bench(runs: int, seconds: float, count: int, concurrency: int) -> Result:
    flow = sleepy(seconds)
    async with postgres_database() as name:
        url = database_url(name)
        await asyncio.to_thread(upgrade_url, url)
        queued_per_second = await queue_runs(url, flow, runs)
        print(
            f"  queued {runs} runs at {queued_per_second:.0f} runs/s; load average before the"
            f" drain {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        memories: list[Memory] = []
        with worker_logs(count) as logs:
            launched = time.time()
            workers = start_workers(url, count, concurrency, logs)
            sampler = asyncio.create_task(sample_memory(workers, memories))
            try:
                poll = await drain(name, runs, workers)
            finally:
                sampler.cancel()
                stop_workers(workers)
                report_logs(logs)
        return Result(queued_per_second, poll, memories, await measured(name, flow, runs, launched))


def quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * q))]


def print_result(result: Result, runs: int, seconds: float) -> None:
    measured = result.runs
    lateness = measured.lateness
    print()
    print(
        f"drain: first run started {measured.started:.2f} s after the workers' launch, the last"
        f" finished after {measured.wall:.2f} s ({runs / measured.wall:.0f} runs/s);"
        f" due times spread over {measured.due_span:.2f} s; peak connections"
        f" {result.poll.peak_connections} to the bench database"
    )
    header = f"{'lateness (s) after the due time':<34} {'p50':>7} {'p99':>7} {'max':>7}"
    print(header)
    print("-" * len(header))
    for label, values in (
        ("the step after the sleep started", lateness.step),
        ("the sleep step ended (woken)", lateness.woken),
        ("the run finished", lateness.finished),
    ):
        print(
            f"{label:<34} {quantile(values, 0.5):>7.3f} {quantile(values, 0.99):>7.3f}"
            f" {max(values, default=float('nan')):>7.3f}"
        )
    print(
        f"runs finished more than {LATE_SECONDS} s after their due time: {lateness.late()}"
        f" of {runs} (mean lateness {statistics.fmean(lateness.finished or [0.0]):.3f} s)"
    )
    print("runs by lateness of their end: " + histogram(lateness.finished))
    tenth = max(1, len(lateness.by_due) // 10)
    tenths = [sorted(lateness.by_due[i : i + tenth]) for i in range(0, len(lateness.by_due), tenth)]
    print("lateness of their end, p50/max, by tenth of the due times (earliest first):")
    print("  " + "  ".join(f"{quantile(part, 0.5):.2f}/{part[-1]:.2f}" for part in tenths))
    print()
    header = (
        f"{'worker':>6} {'pid':>8} {'RSS MiB: first':>14} {'started':>8} {'mid':>8} {'peak':>8}"
        f" {'end':>8} {'end-started':>11} {'CPU s':>7}"
    )
    print(header)
    print("-" * len(header))
    for number, memory in enumerate(result.memories, 1):
        if not memory.samples:
            print(f"{number:>6} {memory.pid:>8}  no sample")
            continue
        peak = max(kb for _, kb in memory.samples)
        ready = memory.at(measured.started)
        first, end = memory.samples[0][1], memory.samples[-1][1]
        mid = memory.at((measured.started + memory.samples[-1][0]) / 2)
        print(
            f"{number:>6} {memory.pid:>8} {mib(first):>14.1f} {mib(ready):>8.1f}"
            f" {mib(mid):>8.1f} {mib(peak):>8.1f} {mib(end):>8.1f} {mib(end - ready):>+11.1f}"
            f" {memory.cpu_seconds:>7.1f}"
        )
    print(
        f"({SAMPLE_SECONDS} s samples; first: at launch; started: when the first run started;"
        " mid: halfway from then to the end)"
    )
    for problem in measured.problems:
        print(f"CHECK FAILED: {problem}", flush=True)


def histogram(values: Sequence[float]) -> str:
    counts = [0] * len(BUCKETS)
    for value in values:
        counts[next(i for i, bound in enumerate(BUCKETS) if value <= bound)] += 1
    labels, low = [], 0.0
    for bound, count in zip(BUCKETS, counts, strict=True):
        labels.append(
            f"{low:g}-{bound:g} s: {count}" if bound != float("inf") else f">{low:g} s: {count}"
        )
        low = bound
    return ", ".join(labels)


def mib(kb: int) -> float:
    return kb / 1024


async def main_async(arguments: argparse.Namespace) -> int:
    print(await server_facts(), flush=True)
    print(
        f"{arguments.runs} runs sleeping {arguments.seconds:g} s, {arguments.workers} worker(s),"
        f" concurrency {arguments.concurrency} each",
        flush=True,
    )
    result = await bench(
        arguments.runs, arguments.seconds, arguments.workers, arguments.concurrency
    )
    print_result(result, arguments.runs, arguments.seconds)
    return 1 if result.runs.problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=100)
    arguments = parser.parse_args()
    if not 0 < arguments.seconds < STALL_SECONDS / 2:
        # bench_workers.drain gives up when no run finished for STALL_SECONDS
        parser.error(f"--seconds must be above 0 and under {STALL_SECONDS / 2:g}")
    sys.exit(asyncio.run(main_async(arguments)))


if __name__ == "__main__":
    main()

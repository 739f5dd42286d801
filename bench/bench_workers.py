"""Standalone workers draining a queue of runs on PostgreSQL, against PostgreSQL's own ceiling.

    .venv/bin/python -m bench.bench_workers [--runs 10000] [--workers 1,2,4]
        [--flows chain,fanout,limited] [--concurrency 100]

First PostgreSQL's ceiling: `pgbench` (one-row INSERT per transaction, 8 clients, 10 s) on a
fresh database, in commits/s. Then, for each flow (a 3-step chain of `set` steps; a 1->10->1
fan-out, 12 tasks a run; `limited`: the chain with `concurrency: {limit: 10}` on 10 keys, not
run by default) and each number of workers: a fresh database, migrated; one API
process (EMBEDDED_WORKER=false, so it never executes a run) queues --runs runs through
`POST /flows/{name}/runs` from 16 clients and stops; then N `python -m app worker
--concurrency C` processes drain the queue.

Prints, per configuration: the queueing rate; the workers' start-up (until the first run
finished); "wall" runs/s (from the workers' launch to the last finished run) and "steady"
runs/s (from the first finished run to the last), both from the runs' `finished_at`; steady
steps/s (steps: the completed task rows, counted); commits per run (pg_stat_database.xact_commit
of the bench database over the drain, the bench's own polling subtracted); steady steps/s as a
fraction of the ceiling; the peak connections seen during the drain. Then a table of all of them.
Every run is checked (completed, with the right outputs); failed runs' errors and a summary of
the workers' stderr are printed, and the exit status is 1 when a check failed. The machine
should be otherwise idle: the load average before each configuration is printed.

Target on a 2-core machine: >= 850 runs/s for the chain with 2 workers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import IO

import asyncpg
import httpx

from app.store.migrations import upgrade_url
from bench.bench_api import postgres_commits, postgres_database, server
from bench.flows import CHAIN, FAN_OUT_10, LIMITED_CHAIN

QUEUE_CLIENTS = 16
POLL_SECONDS = 0.05
STALL_SECONDS = 60.0  # no run finished for this long: the drain is stuck
CEILING_SECONDS = 10
FINISHED = "('completed', 'failed', 'cancelled')"
LOG_HEAD = 15
# A log record or the last line of a traceback: `ERROR:app...: ...`, `asyncpg.exceptions.X: ...`
ERROR_LINE = re.compile(r"^(ERROR|WARNING|CRITICAL)\b|^[\w.]+(Error|Exception)\b")


@dataclass(frozen=True)
class Flow:
    key: str
    name: str
    source: str
    correct: str  # SQL condition on a flow_runs row: its outputs are the expected ones


FLOWS = {
    "chain": Flow(
        "chain", "Chain", CHAIN, "(outputs->>'z')::bigint = (inputs->>'n')::bigint * 2 + 1"
    ),
    "fanout": Flow(
        "fanout",
        "FanOut10",
        FAN_OUT_10,
        "(outputs->>'total')::bigint = (inputs->>'n')::bigint * 10 + 55",
    ),
    "limited": Flow(
        "limited",
        "LimitedChain",
        LIMITED_CHAIN,
        "(outputs->>'z')::bigint = (inputs->>'n')::bigint * 2 + 1",
    ),
}


def database_url(name: str) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def dsn(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


# --- PostgreSQL's ceiling ---------------------------------------------------------------------


async def ceiling() -> float:
    """pgbench's commits/s for one-row INSERTs from 8 clients, on a fresh database."""
    async with postgres_database() as name:
        connection = await asyncpg.connect(dsn(name))
        await connection.execute("CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, v int)")
        await connection.close()
        with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
            script.write("INSERT INTO bench_ceiling (v) VALUES (1);\n")
            script.flush()
            command = ["pgbench", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-n"]
            command += ["-c", "8", "-j", "2", "-T", str(CEILING_SECONDS), "-f", script.name, name]
            done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True)
    found = re.search(r"tps = ([0-9.]+)", done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stdout}{done.stderr}")
    return float(found.group(1))


# --- Queueing runs through the API ------------------------------------------------------------


async def queue_runs(url: str, flow: Flow, runs: int) -> float:
    """Register the flow and queue `runs` runs through the API; runs queued per second."""
    queue_only = {"EMBEDDED_WORKER": "false", "MIGRATE_ON_START": "false"}
    with server(url, queue_only) as base:  # its embedded worker off: it only queues
        limits = httpx.Limits(max_connections=QUEUE_CLIENTS)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
            answer = await client.post(
                "/flows", content=flow.source, headers={"content-type": "application/yaml"}
            )
            if answer.status_code != 201:
                raise RuntimeError(f"registering {flow.name}: {answer.status_code} {answer.text}")
            numbers = iter(range(runs))

            async def one_client() -> None:
                for n in numbers:
                    answer = await client.post(
                        f"/flows/{flow.name}/runs", json={"inputs": {"n": n}}
                    )
                    if answer.status_code != 202:
                        raise RuntimeError(f"queueing: {answer.status_code} {answer.text}")

            started = time.perf_counter()
            await asyncio.gather(*(one_client() for _ in range(QUEUE_CLIENTS)))
            return runs / (time.perf_counter() - started)


# --- Draining with worker processes -----------------------------------------------------------


def start_workers(
    url: str, count: int, concurrency: int, logs: Sequence[IO[str]]
) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "app", "worker", "--concurrency", str(concurrency)]
    return [subprocess.Popen(command, env=env, stderr=log) for log in logs[:count]]


def stop_workers(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, as an orchestrator stops them; nothing is in flight once drained."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            print(f"  worker {worker.pid} ignored SIGTERM for 60 s: killed", flush=True)
            worker.kill()
            worker.wait()


@dataclass
class Poll:
    """What the bench's poller saw while the workers drained the queue."""

    queries: int = 0  # each one commit in the bench database
    peak_connections: int = 0  # client backends on the bench database (the poller's included)
    peak_server_connections: int = 0  # client backends on the whole server


@dataclass(frozen=True)
class Drain:
    started: float  # epoch seconds, when the workers were launched
    poll: Poll


POLL = f"""
SELECT (SELECT count(*) FROM flow_runs WHERE status IN {FINISHED}),
    count(*) FILTER (WHERE datname = current_database()),
    count(*)
FROM pg_stat_activity WHERE backend_type = 'client backend'
"""


async def drain(name: str, runs: int, workers: Sequence[subprocess.Popen[bytes]]) -> Poll:
    """Poll until every run finished. Raises when stuck or when a worker died."""
    poller = await asyncpg.connect(dsn(name))
    poll = Poll(queries=1)  # the poller's connection start-up commits too
    last_count, last_progress = -1, time.monotonic()
    try:
        while True:
            count, connections, server_connections = await poller.fetchrow(POLL)
            poll.queries += 1
            poll.peak_connections = max(poll.peak_connections, connections)
            poll.peak_server_connections = max(poll.peak_server_connections, server_connections)
            if count >= runs:
                return poll
            if count != last_count:
                last_count, last_progress = count, time.monotonic()
            if time.monotonic() - last_progress > STALL_SECONDS:
                raise RuntimeError(f"stuck: {count} of {runs} runs finished")
            if any(worker.poll() is not None for worker in workers):
                raise RuntimeError(f"a worker exited while {runs - count} runs were unfinished")
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await poller.close()


async def settled_commits(name: str) -> int:
    """The database's xact_commit once it stops moving.

    `pg_stat_force_next_flush()` would only flush the calling backend's counters; the backends
    counted here (API, workers, poller) have all disconnected, and a backend flushes its
    counters as it exits, so waiting for the value to settle is enough.
    """
    value = await postgres_commits(name)
    for _ in range(20):
        await asyncio.sleep(0.3)
        again = await postgres_commits(name)
        if again == value:
            return value
        value = again
    return value


# --- Checking and timing the drained runs -----------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """What the store shows once drained."""

    startup: float  # seconds from the workers' launch to the first finished run
    wall: float  # runs/s from the workers' launch to the last finished run
    steady: float  # runs/s from the first finished run to the last
    steps_per_run: float  # completed task rows per completed run
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Result:
    flow: str
    workers: int
    concurrency: int
    queued_per_second: float
    commits_per_run: float
    drain: Drain
    runs: Measured

    @property
    def steps_per_second(self) -> float:
        return self.runs.steady * self.runs.steps_per_run


async def measured(name: str, flow: Flow, runs: int, drained: Drain) -> Measured:
    connection = await asyncpg.connect(dsn(name))
    try:
        statuses = dict(
            await connection.fetch("SELECT status, count(*) FROM flow_runs GROUP BY status")
        )
        correct = await connection.fetchval(
            f"SELECT count(*) FROM flow_runs WHERE status = 'completed' AND {flow.correct}"
        )
        # finished_at comes from the workers' clock, the same as this process's time.time().
        first, last = await connection.fetchrow(
            "SELECT extract(epoch FROM min(finished_at))::float8,"
            " extract(epoch FROM max(finished_at))::float8 FROM flow_runs"
        )
        steps = await connection.fetchval(
            "SELECT count(*) FROM task_runs t JOIN flow_runs r ON r.id = t.run_id"
            " WHERE r.status = 'completed' AND t.status = 'completed'"
        )
        errors = await connection.fetch(
            "SELECT error->>'type' AS type, left(error->>'message', 200) AS message, count(*)"
            " FROM flow_runs WHERE status <> 'completed' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5"
        )
    finally:
        await connection.close()
    problems: list[str] = []
    if statuses != {"completed": runs}:
        problems.append(f"run statuses {statuses}, expected {{'completed': {runs}}}")
    if correct != runs:
        problems.append(f"{runs - correct} runs without the expected outputs")
    problems += [f"{count} x {kind}: {message}" for kind, message, count in errors]
    return Measured(
        startup=first - drained.started,
        wall=runs / (last - drained.started),
        steady=(runs - 1) / (last - first) if last > first else float("nan"),
        steps_per_run=steps / max(1, statuses.get("completed", 0)),
        problems=tuple(problems),
    )


# --- One configuration ------------------------------------------------------------------------


async def bench(flow: Flow, runs: int, count: int, concurrency: int) -> Result:
    async with postgres_database() as name:
        url = database_url(name)
        await asyncio.to_thread(upgrade_url, url)
        queued_per_second = await queue_runs(url, flow, runs)
        with worker_logs(count) as logs:
            before = await settled_commits(name)
            try:
                drained = await drain_with_workers(name, url, runs, count, concurrency, logs)
            finally:
                report_logs(logs)
            after = await settled_commits(name)
        commits_per_run = (after - before - drained.poll.queries) / runs
        return Result(
            flow.key,
            count,
            concurrency,
            queued_per_second,
            commits_per_run,
            drained,
            await measured(name, flow, runs, drained),
        )


async def drain_with_workers(
    name: str, url: str, runs: int, count: int, concurrency: int, logs: Sequence[IO[str]]
) -> Drain:
    started = time.time()
    workers = start_workers(url, count, concurrency, logs)
    try:
        poll = await drain(name, runs, workers)
    finally:
        stop_workers(workers)
    return Drain(started, poll)


@contextmanager
def worker_logs(count: int) -> Iterator[Sequence[IO[str]]]:
    """A temporary file per worker for its stderr (warnings, tracebacks)."""
    with ExitStack() as stack:
        yield [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(count)]


def report_logs(logs: Sequence[IO[str]]) -> None:
    """Each worker's stderr, summarised: its first lines and its most frequent errors."""
    for number, log in enumerate(logs, 1):
        log.seek(0)
        lines = log.read().splitlines()
        if not lines:
            continue
        print(f"  worker {number} stderr: {len(lines)} lines; the first {LOG_HEAD}:")
        for line in lines[:LOG_HEAD]:
            print(f"    | {line}")
        errors = Counter(line[:200] for line in lines if ERROR_LINE.match(line))
        for line, times in errors.most_common(5):
            print(f"    {times:>6} x {line}")


def print_result(result: Result, ceiling_tps: float) -> None:
    runs = result.runs
    poll = result.drain.poll
    print(
        f"  queued {result.queued_per_second:7.1f} runs/s through the API; peak connections"
        f" during the drain: {poll.peak_connections} to the bench database,"
        f" {poll.peak_server_connections} to the server"
    )
    print(
        f"  wall {runs.wall:7.1f} runs/s (start-up {runs.startup:.2f} s)"
        f"  steady {runs.steady:7.1f} runs/s  {result.steps_per_second:8.1f} steps/s"
        f" ({runs.steps_per_run:.1f} steps/run)  commits/run {result.commits_per_run:.2f}"
        f"  steps/s / ceiling {result.steps_per_second / ceiling_tps:.2f}",
        flush=True,
    )
    for problem in runs.problems:
        print(f"  CHECK FAILED: {problem}", flush=True)


def print_table(results: Sequence[Result], ceiling_tps: float) -> None:
    print()
    print(ceiling_line(ceiling_tps))
    print(
        "wall: from the workers' launch; steady: from the first finished run to the last;"
        " steps/s: steady"
    )
    header = (
        f"{'flow':<7} {'workers':>7} {'conc':>5} {'queued/s':>9} {'start s':>8} {'wall r/s':>9}"
        f" {'steady r/s':>10} {'steps/s':>8} {'commits/run':>11} {'/ceiling':>8}  check"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        runs = result.runs
        print(
            f"{result.flow:<7} {result.workers:>7} {result.concurrency:>5}"
            f" {result.queued_per_second:>9.0f} {runs.startup:>8.2f} {runs.wall:>9.1f}"
            f" {runs.steady:>10.1f} {result.steps_per_second:>8.0f}"
            f" {result.commits_per_run:>11.2f} {result.steps_per_second / ceiling_tps:>8.2f}"
            f"  {'FAILED' if runs.problems else 'ok'}"
        )


def ceiling_line(ceiling_tps: float) -> str:
    return f"PostgreSQL ceiling (pgbench, 1-row INSERT, 8 clients): {ceiling_tps:,.0f} commits/s"


async def server_facts() -> str:
    connection = await asyncpg.connect(dsn("postgres"))
    try:
        version = str(await connection.fetchval("SELECT version()")).split(" on ")[0]
        synchronous_commit = await connection.fetchval("SHOW synchronous_commit")
    finally:
        await connection.close()
    return f"{version}, synchronous_commit={synchronous_commit}, {os.cpu_count()} CPUs"


async def main_async(arguments: argparse.Namespace) -> int:
    print(await server_facts(), flush=True)
    ceiling_tps = await ceiling()
    print(ceiling_line(ceiling_tps), flush=True)
    results: list[Result] = []
    for key in arguments.flows:
        for count in arguments.workers:
            print(
                f"{key}: {arguments.runs} runs, {count} worker(s),"
                f" concurrency {arguments.concurrency} each"
                f" (load average before: {os.getloadavg()[0]:.2f})",
                flush=True,
            )
            result = await bench(FLOWS[key], arguments.runs, count, arguments.concurrency)
            print_result(result, ceiling_tps)
            results.append(result)
    print_table(results, ceiling_tps)
    return 1 if any(result.runs.problems for result in results) else 0


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument(
        "--workers", type=lambda text: [int(n) for n in comma_list(text)], default=[1, 2, 4]
    )
    parser.add_argument("--flows", type=comma_list, default=["chain", "fanout"])
    parser.add_argument("--concurrency", type=int, default=100)
    arguments = parser.parse_args()
    unknown = set(arguments.flows) - set(FLOWS)
    if unknown:
        parser.error(f"unknown flows {sorted(unknown)}; choose among {sorted(FLOWS)}")
    sys.exit(asyncio.run(main_async(arguments)))


if __name__ == "__main__":
    main()

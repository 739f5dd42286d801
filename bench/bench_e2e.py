"""End-to-end W3 (a 3-step chain) against DBOS and procrastinate: submission and execution.

    .venv/bin/python -m bench.bench_e2e [--runs 3000] [--clients 32] [--workers 1,2]
        [--systems flow-manager,flow-manager-client,procrastinate,dbos] [--concurrency 32]
        [--rounds 1]
        [--procrastinate-concurrency 10] [--procrastinate-polling 0.1]
        [--dbos-concurrency 32] [--dbos-polling 0.1]

Each system, for each number of workers, on a fresh PostgreSQL database (dropped after):
its workers are started and ready (registered in the database, or saying so) BEFORE the
clock starts; then --clients concurrent clients submit --runs runs of W3 through the
system's public API; the clock runs from the first submission to the last completion. W3
is a chain of three trivial steps, each using the previous one's output: x = n+1, y = 2x,
z = y-1, so z = 2n+1.

- flow-manager: bench/flows.py CHAIN (3 `set` steps); one API process (EMBEDDED_WORKER=false,
  so it only takes submissions) and N `python -m app worker --concurrency C` processes; the
  clients post to `POST /flows/Chain/runs` (aiohttp, keep-alive). Completion: the runs'
  `finished_at`.
- flow-manager-client: the same workers, the runs submitted as the peers submit theirs: by a
  library call in the caller's transaction (`app.client.start_run`, one run per transaction)
  from --clients asyncpg connections; the API process only registers the flow.
- procrastinate: bench/peers/procrastinate_w3.py, one job per step, each deferring the next
  with its result, the last storing z; N workers with `concurrency` (async tasks, LISTEN/
  NOTIFY, `fetch_job_polling_interval` --procrastinate-polling); a submitter process with
  `defer_async` from --clients coroutines. Completion: the `succeeded` event of each run's
  last job.
- dbos: bench/peers/dbos_w3.py, a workflow of 3 `@DBOS.step`s on a queue with
  `worker_concurrency` and `polling_interval_sec` (--dbos-polling); N DBOS processes; a
  submitter process with `DBOSClient.enqueue` from --clients threads. Completion: the
  workflows' `completed_at`.

The peers come from PyPI, pinned in bench/peers/requirements.txt, installed into their own
virtualenv, bench/.peers-venv (git-ignored), created on first use: they never touch the
project's dependencies. Every process's pool is capped at 20 connections (Flow Manager's
default `pool_size`), the submitters' at --clients.

Completion is polled (every 50 ms, a stall of 60 s without progress fails the system) and
the last completion time read from the system's own tables, on this machine's clock like the
first submission's. Every run is checked (completed, z = 2n+1); the exit status is 1 when a
check failed. Prints, per system and worker count, runs/s end to end and the submission
rate alone; then a table with each system's ratio to the best peer measured in the same
round with the same workers. `--rounds` repeats the whole set, interleaved.

Also the CPU time each run cost, from the submissions' start to the last completion (Linux:
read from /proc): the whole machine's busy time per run, and PostgreSQL's processes' part of
it. The clients, the system's processes and PostgreSQL share the machine's cores, so where a
system is CPU-bound its rate is about the cores over its CPU per run. For the peers the window
also holds their submitter process's start (an interpreter importing the library): their
figure is high by that, a fraction of a millisecond per run at 3,000 runs.

Target (issue 15): Flow Manager >= 10x the best peer, with 1 and with 2 workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp
import asyncpg

from app.client import start_run
from app.store.migrations import upgrade_url
from bench.bench_api import postgres_database, server
from bench.bench_workers import (
    FLOWS,
    comma_list,
    database_url,
    dsn,
    report_logs,
    start_workers,
    stop_workers,
)
from bench.cpu import CpuMeter, CpuUse

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / "bench" / ".peers-venv"
REQUIREMENTS = ROOT / "bench" / "peers" / "requirements.txt"
SYSTEMS = ("flow-manager", "flow-manager-client", "procrastinate", "dbos")
PEERS = ("procrastinate", "dbos")
POLL_SECONDS = 0.05
STALL_SECONDS = 60.0  # no run finished for this long: the system is stuck
READY_SECONDS = 60.0  # workers not ready by then: the system failed to start
PEER_POOL_SIZE = 20  # POOL_SIZE in bench/peers/*: Flow Manager's default pool_size
# The peers' defaults (options): 4, 10 and 32 jobs at once per procrastinate worker gave the
# same figure here, and so did DBOS with 32 or 100 workflows, polling every 0.02 to 0.1 s.
PROCRASTINATE_CONCURRENCY = 10
# procrastinate's default, 5 s, cost it a third of its throughput here: its worker clears the
# new-job event after each fetch, so a job deferred while it fetched waits for the next poll.
PROCRASTINATE_POLLING = 0.1
DBOS_CONCURRENCY = 32
DBOS_POLLING = 0.1  # DBOS's default, 1 s, starts at most DBOS_CONCURRENCY workflows a second

FM_DONE = "SELECT count(*) FROM flow_runs WHERE status IN ('completed', 'failed', 'cancelled')"
FM_LAST = "SELECT extract(epoch FROM max(finished_at))::float8 FROM flow_runs"
PROCRASTINATE_DONE = """
SELECT count(*) FILTER (WHERE task_name = 'w3_c' AND status IN ('succeeded', 'failed', 'aborted'))
    + count(*) FILTER (WHERE task_name <> 'w3_c' AND status IN ('failed', 'aborted'))
FROM procrastinate_jobs
"""
PROCRASTINATE_LAST = """
SELECT extract(epoch FROM max(e.at))::float8 FROM procrastinate_events e
JOIN procrastinate_jobs j ON j.id = e.job_id WHERE j.task_name = 'w3_c' AND e.type = 'succeeded'
"""
PROCRASTINATE_STATUSES = "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1"
PROCRASTINATE_CORRECT = "SELECT count(*) FROM bench_w3_results WHERE z = 2 * n + 1"
DBOS_DONE = """
SELECT count(*) FROM dbos.workflow_status
WHERE status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')
"""
DBOS_LAST = "SELECT max(completed_at) / 1000.0 FROM dbos.workflow_status"


@dataclass(frozen=True)
class Workload:
    runs: int
    clients: int
    concurrency: dict[str, int]  # per worker process, by system
    procrastinate_polling: float  # the workers' fetch_job_polling_interval, seconds
    dbos_polling: float  # seconds between a DBOS process's polls of its queue


@dataclass(frozen=True)
class Outcome:
    """One system with one number of workers: the clock's ends, and what the check found."""

    system: str
    workers: int
    first: float = 0.0  # epoch seconds: the first submission
    submitted: float = 0.0  # epoch seconds: the last submission answered
    last: float = 0.0  # epoch seconds: the last completion
    problems: tuple[str, ...] = ()
    cpu: CpuUse | None = None  # from the first submission to the last completion

    def cpu_per_run(self, runs: int) -> tuple[float, float]:
        """Milliseconds of CPU per run: the machine's, PostgreSQL's."""
        if self.cpu is None or self.cpu.machine is None:
            return float("nan"), float("nan")
        return self.cpu.machine * 1000 / runs, self.cpu.postgres * 1000 / runs

    def rate(self, runs: int) -> float:
        return runs / (self.last - self.first) if self.last > self.first else float("nan")

    def submission_rate(self, runs: int) -> float:
        elapsed = self.submitted - self.first
        return runs / elapsed if elapsed > 0 else float("nan")


# --- The peers' virtualenv ----------------------------------------------------------------


def peers_python() -> Path:
    """bench/.peers-venv's python, the venv created and the peers installed on first use."""
    python = PEERS_VENV / "bin" / "python"
    marker = PEERS_VENV / "bench-requirements.txt"  # what was installed, once it all was
    wanted = REQUIREMENTS.read_text()
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"installing the peers into {PEERS_VENV} ...", flush=True)
    started = time.perf_counter()
    shutil.rmtree(PEERS_VENV, ignore_errors=True)
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    create = [sys.executable, "-m", "venv", str(PEERS_VENV)]
    for command in (create, [*install, "-r", str(REQUIREMENTS)]):
        # pip's warnings about this machine's index configuration would bury the figures
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    marker.write_text(wanted)
    print(f"  installed in {time.perf_counter() - started:.1f} s", flush=True)
    return python


def pinned(package: str) -> str:
    found = re.search(rf"^{package}==(\S+)$", REQUIREMENTS.read_text(), re.MULTILINE)
    return found.group(1) if found else "?"


def peer_command(python: Path, system: str, command: str, *arguments: object) -> list[str]:
    return [str(python), "-m", "bench.peers", system, command, *map(str, arguments)]


def start_peer_workers(
    commands: Sequence[Sequence[str]],
    logs: Sequence[IO[str]],
    outputs: Sequence[IO[str] | None],
) -> list[subprocess.Popen[bytes]]:
    """One process per command, its stderr to its log, its stdout to its output (or ours)."""
    return [
        subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=log)
        for command, log, output in zip(commands, logs, outputs, strict=True)
    ]


async def run_peer(command: Sequence[str]) -> str:
    """A peer script's command to its end; its stdout. Raises with its stderr on failure."""
    done = await asyncio.to_thread(
        subprocess.run, command, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[3:5])} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


# --- Waiting, on any system ----------------------------------------------------------------


async def wait_ready(
    ready: Callable[[], Awaitable[bool]], workers: Sequence[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not await ready():
        if any(worker.poll() is not None for worker in workers):
            raise RuntimeError("a worker exited before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers were not ready in {READY_SECONDS:.0f} s")
        await asyncio.sleep(POLL_SECONDS)


async def wait_done(
    connection: asyncpg.Connection,
    done_query: str,
    runs: int,
    workers: Sequence[subprocess.Popen[bytes]],
) -> None:
    """Poll until `runs` runs finished. Raises when stuck or when a worker died."""
    last_count, last_progress = -1, time.monotonic()
    while True:
        count = await connection.fetchval(done_query)
        if count >= runs:
            return
        if count != last_count:
            last_count, last_progress = count, time.monotonic()
        if time.monotonic() - last_progress > STALL_SECONDS:
            raise RuntimeError(f"stuck: {count} of {runs} runs finished")
        if any(worker.poll() is not None for worker in workers):
            raise RuntimeError(f"a worker exited while {runs - count} runs were unfinished")
        await asyncio.sleep(POLL_SECONDS)


@contextmanager
def temporary_files(count: int) -> Iterator[Sequence[IO[str]]]:
    with ExitStack() as stack:
        yield [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(count)]


@contextmanager
def running(workers: list[subprocess.Popen[bytes]], logs: Sequence[IO[str]]) -> Iterator[None]:
    """Stops the workers (SIGTERM) and summarises their stderr on the way out."""
    try:
        yield
    finally:
        stop_workers(workers)
        report_logs(logs)


# --- Flow Manager ------------------------------------------------------------------------


async def flow_manager(name: str, count: int, load: Workload, *, over_sql: bool = False) -> Outcome:
    """Submitted through the HTTP API or, `over_sql`, through `app.client` (the peers' way:
    a library call that inserts in the caller's transaction; the API then only registers the
    flow)."""
    url = database_url(name)
    chain = FLOWS["chain"]
    await asyncio.to_thread(upgrade_url, url)
    queue_only = {"EMBEDDED_WORKER": "false", "MIGRATE_ON_START": "false"}
    connection = await asyncpg.connect(dsn(name))
    try:
        with server(url, queue_only) as base, temporary_files(count) as logs:
            connector = aiohttp.TCPConnector(limit=load.clients)
            async with aiohttp.ClientSession(base, connector=connector) as client:
                headers = {"content-type": "application/yaml"}
                async with client.post("/flows", data=chain.source, headers=headers) as answer:
                    if answer.status != 201:
                        raise RuntimeError(f"registering the flow: {answer.status}")
                concurrency = load.concurrency["flow-manager"]
                workers = start_workers(url, count, concurrency, logs)
                with running(workers, logs):
                    pids = [worker.pid for worker in workers]

                    async def ready() -> bool:
                        query = "SELECT count(*) FROM workers WHERE pid = ANY($1::int[])"
                        return bool(await connection.fetchval(query, pids) == count)

                    await wait_ready(ready, workers)
                    meter = CpuMeter()
                    if over_sql:
                        first, submitted = await submit_over_sql(dsn(name), chain.name, load)
                    else:
                        first, submitted = await submit_over_http(client, chain.name, load)
                    await wait_done(connection, FM_DONE, load.runs, workers)
                    cpu = meter.stop()
        last = await connection.fetchval(FM_LAST)
        statuses = dict(
            await connection.fetch("SELECT status, count(*) FROM flow_runs GROUP BY status")
        )
        correct = await connection.fetchval(
            f"SELECT count(*) FROM flow_runs WHERE status = 'completed' AND {chain.correct}"
        )
    finally:
        await connection.close()
    problems = []
    if statuses != {"completed": load.runs}:
        problems.append(f"run statuses {statuses}, expected {{'completed': {load.runs}}}")
    if correct != load.runs:
        problems.append(f"{load.runs - correct} runs without z = 2n+1")
    system = "flow-manager-client" if over_sql else "flow-manager"
    return Outcome(system, count, first, submitted, last, tuple(problems), cpu)


async def submit_over_http(
    client: aiohttp.ClientSession, flow: str, load: Workload
) -> tuple[float, float]:
    """`POST /flows/{flow}/runs` from `load.clients` clients; first and last submission."""
    numbers = iter(range(load.runs))
    first: list[float] = []

    async def one_client() -> None:
        for n in numbers:
            if not first:
                first.append(time.time())
            async with client.post(f"/flows/{flow}/runs", json={"inputs": {"n": n}}) as answer:
                if answer.status != 202:
                    raise RuntimeError(f"submitting: {answer.status} {await answer.text()}")

    await asyncio.gather(*(one_client() for _ in range(load.clients)))
    return first[0], time.time()


async def submit_over_sql(dsn: str, flow: str, load: Workload) -> tuple[float, float]:
    """`app.client.start_run` from `load.clients` connections, each run its own transaction;
    first and last submission."""
    numbers = iter(range(load.runs))
    first: list[float] = []
    pool = await asyncpg.create_pool(dsn, min_size=load.clients, max_size=load.clients)

    async def one_client() -> None:
        async with pool.acquire() as connection:
            for n in numbers:
                if not first:
                    first.append(time.time())
                await start_run(connection, flow, {"n": n})

    try:
        await asyncio.gather(*(one_client() for _ in range(load.clients)))
        return first[0], time.time()
    finally:
        await pool.close()


# --- The peers ------------------------------------------------------------------------------


async def procrastinate(python: Path, name: str, count: int, load: Workload) -> Outcome:
    address = dsn(name)
    await run_peer(peer_command(python, "procrastinate", "setup", "--dsn", address))
    concurrency = (
        "--concurrency", load.concurrency["procrastinate"],
        "--polling", load.procrastinate_polling,
    )  # fmt: skip
    commands = [
        peer_command(
            python, "procrastinate", "worker", "--dsn", address, *concurrency, "--name", f"w{i}"
        )
        for i in range(1, count + 1)
    ]
    submit = ("--dsn", address, "--runs", load.runs, "--clients", load.clients)
    connection = await asyncpg.connect(address)
    try:
        with temporary_files(count) as logs:
            workers = start_peer_workers(commands, logs, [None] * count)
            with running(workers, logs):

                async def ready() -> bool:
                    query = "SELECT count(*) FROM procrastinate_workers"
                    return bool(await connection.fetchval(query) == count)

                await wait_ready(ready, workers)
                meter = CpuMeter()
                output = await run_peer(peer_command(python, "procrastinate", "submit", *submit))
                await wait_done(connection, PROCRASTINATE_DONE, load.runs, workers)
                cpu = meter.stop()
        last = await connection.fetchval(PROCRASTINATE_LAST)
        jobs = dict(await connection.fetch(PROCRASTINATE_STATUSES))
        correct = await connection.fetchval(PROCRASTINATE_CORRECT)
    finally:
        await connection.close()
    problems = []
    if jobs != {"succeeded": 3 * load.runs}:
        problems.append(f"job statuses {jobs}, expected {{'succeeded': {3 * load.runs}}}")
    if correct != load.runs:
        problems.append(f"{load.runs - correct} runs without z = 2n+1")
    times = json.loads(output)
    return Outcome(
        "procrastinate", count, times["first"], times["submitted"], last, tuple(problems), cpu
    )


async def dbos(python: Path, name: str, count: int, load: Workload) -> Outcome:
    address = dsn(name)
    queue = ("--concurrency", load.concurrency["dbos"], "--polling", load.dbos_polling)
    await run_peer(peer_command(python, "dbos", "setup", "--dsn", address, *queue))
    commands = [
        peer_command(python, "dbos", "worker", "--dsn", address, "--name", f"w{i}")
        for i in range(1, count + 1)
    ]
    submit = ("--dsn", address, "--runs", load.runs, "--clients", load.clients)
    connection = await asyncpg.connect(address)
    try:
        with temporary_files(count) as logs, temporary_files(count) as outputs:
            workers = start_peer_workers(commands, logs, outputs)
            with running(workers, logs):

                async def ready() -> bool:
                    return all(said_ready(output) for output in outputs)

                await wait_ready(ready, workers)
                meter = CpuMeter()
                output = await run_peer(peer_command(python, "dbos", "submit", *submit))
                await wait_done(connection, DBOS_DONE, load.runs, workers)
                cpu = meter.stop()
        last = await connection.fetchval(DBOS_LAST)
    finally:
        await connection.close()
    found = json.loads(await run_peer(peer_command(python, "dbos", "check", "--dsn", address)))
    expected = {"workflows": load.runs, "succeeded": load.runs, "correct": load.runs}
    problems = [] if found == expected else [f"workflows {found}, expected {expected}"]
    times = json.loads(output)
    first, submitted = times["first"], times["submitted"]
    return Outcome("dbos", count, first, submitted, float(last), tuple(problems), cpu)


def said_ready(output: IO[str]) -> bool:
    output.seek(0)
    return "bench-worker ready" in output.read()


# --- One configuration, and the whole set -----------------------------------------------------


# A system that fails this way is reported (and the exit status is 1); the others still run.
FAILURES = (RuntimeError, ValueError, OSError, asyncpg.PostgresError, aiohttp.ClientError)


async def measure(system: str, count: int, load: Workload, python: Path | None) -> Outcome:
    async with postgres_database() as name:
        try:
            if system == "flow-manager":
                return await flow_manager(name, count, load)
            if system == "flow-manager-client":
                return await flow_manager(name, count, load, over_sql=True)
            assert python is not None
            if system == "procrastinate":
                return await procrastinate(python, name, count, load)
            return await dbos(python, name, count, load)
        except FAILURES as error:
            return Outcome(system, count, problems=(f"{type(error).__name__}: {error}",))


def settings_lines(systems: Sequence[str], load: Workload) -> list[str]:
    lines = {
        "flow-manager": (
            "flow-manager: N x `python -m app worker --concurrency"
            f" {load.concurrency['flow-manager']}`"
            f" (pool_size 20), one API process (EMBEDDED_WORKER=false); {load.clients}"
            " aiohttp clients posting to POST /flows/Chain/runs"
        ),
        "flow-manager-client": (
            "flow-manager-client: the same workers; the API only registers the flow;"
            f" {load.clients} asyncpg connections calling app.client.start_run, one run per"
            " transaction"
        ),
        "procrastinate": (
            f"procrastinate {pinned('procrastinate')}: N workers, concurrency"
            f" {load.concurrency['procrastinate']}, listen_notify, fetch_job_polling_interval"
            f" {load.procrastinate_polling}, pool <= {PEER_POOL_SIZE};"
            " one job per step;"
            f" {load.clients} defer_async callers (pool <= {load.clients})"
        ),
        "dbos": (
            f"dbos {pinned('dbos')}: N DBOS processes, queue worker_concurrency"
            f" {load.concurrency['dbos']}, polling_interval_sec {load.dbos_polling},"
            f" sys_db_pool_size {PEER_POOL_SIZE}; {load.clients} DBOSClient.enqueue threads"
            f" (pool {load.clients})"
        ),
    }
    return [lines[system] for system in systems]


def print_outcome(outcome: Outcome, runs: int) -> None:
    if not outcome.problems or outcome.last > outcome.first:
        machine, postgres = outcome.cpu_per_run(runs)
        print(
            f"  {outcome.system:<19} {outcome.workers} worker(s):"
            f" {outcome.rate(runs):7.1f} runs/s end to end"
            f" (submitted at {outcome.submission_rate(runs):7.1f} runs/s,"
            f" last completion {outcome.last - outcome.submitted:5.2f} s after the last"
            f" submission; CPU per run {machine:.2f} ms, PostgreSQL's {postgres:.2f} ms)",
            flush=True,
        )
    for problem in outcome.problems:
        print(f"  CHECK FAILED ({outcome.system}, {outcome.workers} worker(s)): {problem}")


def best_peer(outcomes: Sequence[Outcome], runs: int) -> float:
    rates = [o.rate(runs) for o in outcomes if o.system in PEERS and not o.problems]
    return max(rates, default=float("nan"))


def print_table(rounds: Sequence[Sequence[Outcome]], workers: Sequence[int], runs: int) -> None:
    print()
    print("runs/s end to end (first submission to last completion);")
    print("ratio: to the best peer of the same round with the same workers")
    header = (
        f"{'round':>5} {'workers':>7} {'system':<19} {'runs/s':>8} {'submit/s':>9} {'ratio':>7}"
        f" {'cpu ms/run':>10} {'pg ms/run':>9}"
    )
    print(header + "  check")
    print("-" * (len(header) + 7))
    ratios: dict[tuple[int, str], list[float]] = {}
    for number, outcomes in enumerate(rounds, 1):
        for count in workers:
            same = [o for o in outcomes if o.workers == count]
            best = best_peer(same, runs)
            for outcome in same:
                ratio = outcome.rate(runs) / best
                ratios.setdefault((count, outcome.system), []).append(ratio)
                machine, postgres = outcome.cpu_per_run(runs)
                print(
                    f"{number:>5} {count:>7} {outcome.system:<19} {outcome.rate(runs):>8.1f}"
                    f" {outcome.submission_rate(runs):>9.1f} {ratio:>6.2f}x"
                    f" {machine:>10.2f} {postgres:>9.2f}"
                    f"  {'FAILED' if outcome.problems else 'ok'}"
                )
    if len(rounds) > 1:
        print()
        print("median ratio to the best peer over the rounds:")
        for (count, system), values in ratios.items():
            print(f"  {count} worker(s) {system:<19} {statistics.median(values):6.2f}x")


async def main_async(arguments: argparse.Namespace) -> int:
    concurrency = {
        "flow-manager": arguments.concurrency,
        "procrastinate": arguments.procrastinate_concurrency,
        "dbos": arguments.dbos_concurrency,
    }
    load = Workload(
        arguments.runs,
        arguments.clients,
        concurrency,
        arguments.procrastinate_polling,
        arguments.dbos_polling,
    )
    systems: list[str] = arguments.systems
    python = peers_python() if set(systems) & set(PEERS) else None
    print(f"W3: {load.runs} runs from {load.clients} clients; {os.cpu_count()} CPUs")
    for line in settings_lines(systems, load):
        print(f"  {line}")
    rounds: list[list[Outcome]] = []
    for number in range(1, arguments.rounds + 1):
        outcomes: list[Outcome] = []
        for count in arguments.workers:
            print(
                f"round {number}, {count} worker(s)"
                f" (load average before: {os.getloadavg()[0]:.2f})",
                flush=True,
            )
            for system in systems:
                outcome = await measure(system, count, load, python)
                print_outcome(outcome, load.runs)
                outcomes.append(outcome)
        rounds.append(outcomes)
    print_table(rounds, arguments.workers, load.runs)
    failed = any(outcome.problems for outcomes in rounds for outcome in outcomes)
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--workers", type=lambda text: [int(n) for n in comma_list(text)], default=[1, 2]
    )
    parser.add_argument("--systems", type=comma_list, default=list(SYSTEMS))
    parser.add_argument(
        "--concurrency", type=int, default=32, help="runs at once per Flow Manager worker"
    )
    parser.add_argument(
        "--procrastinate-concurrency", type=int, default=PROCRASTINATE_CONCURRENCY,
        help="jobs at once per procrastinate worker",
    )  # fmt: skip
    parser.add_argument(
        "--procrastinate-polling", type=float, default=PROCRASTINATE_POLLING,
        help="the workers' fetch_job_polling_interval",
    )  # fmt: skip
    parser.add_argument(
        "--dbos-concurrency", type=int, default=DBOS_CONCURRENCY,
        help="the queue's worker_concurrency: workflows at once per DBOS process",
    )  # fmt: skip
    parser.add_argument(
        "--dbos-polling", type=float, default=DBOS_POLLING,
        help="the queue's polling_interval_sec",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1)
    arguments = parser.parse_args()
    unknown = set(arguments.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose among {list(SYSTEMS)}")
    counts = (arguments.runs, arguments.clients, arguments.concurrency, arguments.rounds)
    peers = (arguments.procrastinate_concurrency, arguments.dbos_concurrency)
    pollings = (arguments.procrastinate_polling, arguments.dbos_polling)
    if min(*counts, *peers) < 1 or min(pollings) <= 0:
        parser.error("every count must be at least 1, every polling interval above 0")
    sys.exit(asyncio.run(main_async(arguments)))


if __name__ == "__main__":
    main()

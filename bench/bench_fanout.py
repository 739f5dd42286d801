"""Fan-out across workers: one run 1 -> 10,000 -> 1, drained by 1 then 2 worker processes.

    .venv/bin/python -m bench.bench_fanout [--elements 10000] [--workers 1,2] [--rounds 1]
        [--in-process] [--batch 100]

The flow (`bench/flows.py`, FAN_OUT_WIDE): a `set` step, a `for_each` of `--elements`
elements that read it (max_concurrency 1000), a step that sums them. The elements' task is
`Values` (`bench/tasks.py`), `set` but not `pure`: a fan-out of a pure task stays in its run's
process, and sharing is for elements with effects. For each number of workers:
a fresh PostgreSQL database, migrated; an API process (EMBEDDED_WORKER=false: it never
executes a run) registers the flow; N `python -m app worker` processes start
(SHARED_FAN_OUT_MIN=100, ELEMENT_BATCH=--batch) and, once they all registered, one run is
queued through `POST /flows/{name}/runs` and the bench polls until it finished.
`--in-process` adds a configuration with sharing off (SHARED_FAN_OUT_MIN above the fan-out:
every element runs in the run's own worker, as before) for comparison.

Prints, per configuration: the run's seconds from its start to its end (`started_at` to
`finished_at`) and from its queueing, steps/s (the completed task rows over the run's
seconds), its phases (until the first element started, the elements, after the last ended),
how the elements split between the workers (pids, from `task_runs.lease_owner`), and the CPU
seconds the workers and PostgreSQL used meanwhile (Linux: /proc). The run is checked
(completed, the right sum, count and last value); the exit status is 1 when a check failed.
Run it on an otherwise idle machine with free cores: with 2 cores the two workers share them
with PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import asyncpg
import httpx

from app.store.migrations import upgrade_url
from bench.bench_api import postgres_database, server
from bench.bench_workers import (
    comma_list,
    database_url,
    dsn,
    report_logs,
    server_facts,
    start_workers,
    stop_workers,
    worker_logs,
)
from bench.cpu import CpuMeter, CpuUse
from bench.flows import FAN_OUT_WIDE

POLL_SECONDS = 0.1
DEADLINE_SECONDS = 600.0
CONCURRENCY = 10  # runs per worker: there is one


@dataclass(frozen=True)
class Configuration:
    workers: int
    shared: bool

    @property
    def label(self) -> str:
        return f"{self.workers} worker(s), {'shared' if self.shared else 'in-process'}"


@dataclass(frozen=True)
class Result:
    configuration: Configuration
    run_seconds: float  # the run's started_at to finished_at (claim to end)
    wall_seconds: float  # the run's queueing (workers ready) to its finished_at
    steps: int  # completed task rows
    split: dict[str, int]  # elements per worker (lease owner)
    problems: tuple[str, ...]
    cpu: CpuUse | None = None  # between the run's queueing and its end; processes: the workers
    # Seconds from the run's start to its first element's, from the first element's start to
    # the last's end, and from there to the run's end (its resumption and its last steps).
    phases: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.run_seconds


async def register(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/flows", content=FAN_OUT_WIDE, headers={"content-type": "application/yaml"}
    )
    if answer.status_code != 201:
        raise RuntimeError(f"registering: {answer.status_code} {answer.text}")


async def queue_run(client: httpx.AsyncClient, items: list[int]) -> str:
    """Queue one run through the API; its id."""
    answer = await client.post("/flows/FanOutWide/runs", json={"inputs": {"items": items}})
    if answer.status_code != 202:
        raise RuntimeError(f"queueing: {answer.status_code} {answer.text}")
    return str(answer.json()["run_id"])


async def workers_ready(name: str, count: int) -> None:
    """Until `count` workers have registered (they claim from then on)."""
    connection = await asyncpg.connect(dsn(name))
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while await connection.fetchval("SELECT count(*) FROM workers") < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} workers did not start")
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await connection.close()


async def wait_finished(name: str, run_id: str, workers: Sequence[object]) -> None:
    connection = await asyncpg.connect(dsn(name))
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            status = await connection.fetchval("SELECT status FROM flow_runs WHERE id = $1", run_id)
            if status in ("completed", "failed", "cancelled"):
                return
            await asyncio.sleep(POLL_SECONDS)
        raise RuntimeError(f"the run did not finish within {DEADLINE_SECONDS:.0f} s")
    finally:
        await connection.close()


async def measured(
    name: str, run_id: str, items: list[int], configuration: Configuration, queued: float
) -> Result:
    connection = await asyncpg.connect(dsn(name))
    try:
        run = await connection.fetchrow(
            "SELECT status, outputs::text AS outputs, error::text AS error,"
            " extract(epoch FROM started_at)::float8 AS started,"
            " extract(epoch FROM finished_at)::float8 AS finished"
            " FROM flow_runs WHERE id = $1",
            run_id,
        )
        outputs = await connection.fetchrow(
            "SELECT (outputs->>'total')::bigint AS total, (outputs->>'count')::bigint AS count,"
            " (outputs->>'last')::bigint AS last FROM flow_runs WHERE id = $1",
            run_id,
        )
        steps = await connection.fetchval(
            "SELECT count(*) FROM task_runs WHERE run_id = $1 AND status = 'completed'", run_id
        )
        phases = await connection.fetchrow(
            "SELECT extract(epoch FROM min(t.started_at) - r.started_at)::float8 AS share,"
            " extract(epoch FROM max(t.finished_at) - min(t.started_at))::float8 AS elements,"
            " extract(epoch FROM r.finished_at - max(t.finished_at))::float8 AS collect"
            " FROM task_runs t JOIN flow_runs r ON r.id = t.run_id"
            " WHERE t.run_id = $1 AND t.step_id = 'each' GROUP BY r.started_at, r.finished_at",
            run_id,
        )
        owners = await connection.fetch(
            "SELECT coalesce(lease_owner, '?') AS owner, count(*) FROM task_runs"
            " WHERE run_id = $1 AND step_id = 'each' GROUP BY 1",
            run_id,
        )
    finally:
        await connection.close()
    problems: list[str] = []
    if run["status"] != "completed":
        problems.append(f"run {run['status']}: {run['error']}")
    expected = (sum(items) + len(items), len(items), items[-1] + 1)
    if (outputs["total"], outputs["count"], outputs["last"]) != expected:
        problems.append(f"outputs {run['outputs']}, expected total/count/last {expected}")
    if steps != len(items) + 2:
        problems.append(f"{steps} completed tasks, expected {len(items) + 2}")
    return Result(
        configuration,
        run["finished"] - run["started"],
        run["finished"] - queued,
        steps,
        {row["owner"].split(":")[1]: row["count"] for row in owners if ":" in row["owner"]},
        tuple(problems),
        phases=(phases["share"], phases["elements"], phases["collect"]),
    )


async def bench(configuration: Configuration, elements: int, batch: int) -> Result:
    items = list(range(elements))
    async with postgres_database() as name:
        url = database_url(name)
        await asyncio.to_thread(upgrade_url, url)
        settings = {
            "SHARED_FAN_OUT_MIN": "100" if configuration.shared else str(elements + 1),
            "ELEMENT_BATCH": str(batch),
            "TASK_MODULES": "bench.tasks",
        }
        os.environ.update(settings)  # the workers inherit the bench's environment
        queue_only = {"EMBEDDED_WORKER": "false", "MIGRATE_ON_START": "false"}
        with (
            server(url, queue_only) as base,
            worker_logs(configuration.workers) as logs,
        ):
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                await register(client)
                workers = start_workers(url, configuration.workers, CONCURRENCY, logs)
                try:
                    await workers_ready(name, configuration.workers)
                    meter = CpuMeter([worker.pid for worker in workers])
                    queued = time.time()
                    run_id = await queue_run(client, items)
                    await wait_finished(name, run_id, workers)
                    cpu = meter.stop()
                finally:
                    stop_workers(workers)
                    report_logs(logs)
        result = await measured(name, run_id, items, configuration, queued)
        return replace(result, cpu=cpu)


def print_result(result: Result) -> None:
    split = ", ".join(f"pid {pid}: {count}" for pid, count in sorted(result.split.items()))
    print(
        f"  {result.configuration.label}: run {result.run_seconds:6.2f} s"
        f" ({result.steps_per_second:7.0f} steps/s), from its queueing"
        f" {result.wall_seconds:6.2f} s; elements by worker: {split}",
        flush=True,
    )
    share, elements, collect = result.phases
    print(
        f"  until the first element {share:.2f} s, elements {elements:.2f} s,"
        f" then until the run's end {collect:.2f} s",
        flush=True,
    )
    if result.cpu is not None:
        print(
            f"  CPU seconds meanwhile: workers {result.cpu.processes:.2f},"
            f" PostgreSQL {result.cpu.postgres:.2f} ({os.cpu_count()} CPUs)",
            flush=True,
        )
    for problem in result.problems:
        print(f"  CHECK FAILED: {problem}", flush=True)


async def main_async(arguments: argparse.Namespace) -> int:
    print(await server_facts(), flush=True)
    configurations = [Configuration(count, True) for count in arguments.workers]
    if arguments.in_process:
        configurations.insert(0, Configuration(1, False))
    results: list[Result] = []
    for round_ in range(1, arguments.rounds + 1):
        for configuration in configurations:
            print(
                f"round {round_}: 1 -> {arguments.elements:,} -> 1, {configuration.label}"
                f" (load average before: {os.getloadavg()[0]:.2f})",
                flush=True,
            )
            result = await bench(configuration, arguments.elements, arguments.batch)
            print_result(result)
            results.append(result)
    print()
    print(f"{'configuration':<28} {'run s':>7} {'steps/s':>8} {'queued->end s':>13}  check")
    for result in results:
        print(
            f"{result.configuration.label:<28} {result.run_seconds:>7.2f}"
            f" {result.steps_per_second:>8.0f} {result.wall_seconds:>13.2f}"
            f"  {'FAILED' if result.problems else 'ok'}"
        )
    return 1 if any(result.problems for result in results) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=10_000)
    parser.add_argument(
        "--workers", type=lambda text: [int(n) for n in comma_list(text)], default=[1, 2]
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--in-process", action="store_true")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()

"""W3 (the 3-step chain) on procrastinate, for bench/bench_e2e.py. Runs with bench/.peers-venv.

    python -m bench.peers procrastinate setup --dsn DSN
    python -m bench.peers procrastinate worker --dsn DSN --concurrency C --polling P --name NAME
    python -m bench.peers procrastinate submit --dsn DSN --runs R --clients K

One job per step, the fair equivalent of a durable step: `w3_a(n)` defers `w3_b(n, x=n+1)`,
which defers `w3_c(n, y=2x)`, which stores `z = y-1` in `bench_w3_results` (procrastinate
keeps no job results; Flow Manager and DBOS store a run's outputs, so this is the same
durable write). Every task is async, so the worker's `concurrency` runs them side by side
on its event loop, as procrastinate's docs recommend for I/O-bound tasks. P is the worker's
`fetch_job_polling_interval`, its fallback to LISTEN/NOTIFY.

`submit` defers `w3_a` from K concurrent callers of `defer_async` (procrastinate's public
API) and prints, as JSON, the epoch time of the first submission and of the last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import procrastinate  # type: ignore[import-not-found]  # in bench/.peers-venv only

QUEUE = "w3"
POOL_SIZE = 20  # connections per process at most: Flow Manager's default pool_size
RESULTS = "CREATE TABLE bench_w3_results (n bigint PRIMARY KEY, z bigint NOT NULL)"


async def step_a(context: procrastinate.JobContext, n: int) -> None:
    await defer(context, "w3_b", n=n, x=n + 1)


async def step_b(context: procrastinate.JobContext, n: int, x: int) -> None:
    await defer(context, "w3_c", n=n, y=x * 2)


async def step_c(context: procrastinate.JobContext, n: int, y: int) -> None:
    connector = context.app.connector
    await connector.execute_query_async(
        "INSERT INTO bench_w3_results (n, z) VALUES (%(n)s, %(z)s)", n=n, z=y - 1
    )


async def defer(context: procrastinate.JobContext, task: str, **arguments: Any) -> None:
    """The next step, through the worker's own app (its connector, its pool)."""
    await context.app.configure_task(task).defer_async(**arguments)


def bound(dsn: str, pool_size: int) -> procrastinate.App:
    """The app on `dsn`, its pool at most `pool_size` connections, the three tasks named."""
    connector = procrastinate.PsycopgConnector(
        conninfo=dsn, min_size=min(4, pool_size), max_size=pool_size
    )
    app = procrastinate.App(connector=connector)
    for name, step in (("w3_a", step_a), ("w3_b", step_b), ("w3_c", step_c)):
        app.task(name=name, queue=QUEUE, pass_context=True)(step)
    return app


async def setup(dsn: str) -> None:
    app = bound(dsn, 1)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        await app.connector.execute_query_async(RESULTS)


async def work(dsn: str, concurrency: int, polling: float, name: str) -> None:
    """Until SIGTERM (procrastinate's own handler), then finish the jobs in hand."""
    app = bound(dsn, POOL_SIZE)
    async with app.open_async():
        await app.run_worker_async(
            queues=[QUEUE],
            concurrency=concurrency,
            name=name,
            listen_notify=True,
            fetch_job_polling_interval=polling,
        )


async def submit(dsn: str, runs: int, clients: int) -> dict[str, float]:
    app = bound(dsn, clients)
    async with app.open_async():
        deferrer = app.configure_task("w3_a")
        numbers = iter(range(runs))
        first: list[float] = []

        async def one_client() -> None:
            for n in numbers:
                if not first:
                    first.append(time.time())
                await deferrer.defer_async(n=n)

        await asyncio.gather(*(one_client() for _ in range(clients)))
        return {"first": first[0], "submitted": time.time()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["setup", "worker", "submit"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--polling", type=float, default=5.0)
    parser.add_argument("--name", default="worker")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    arguments = parser.parse_args()
    if arguments.command == "setup":
        asyncio.run(setup(arguments.dsn))
    elif arguments.command == "worker":
        asyncio.run(work(arguments.dsn, arguments.concurrency, arguments.polling, arguments.name))
    else:
        times = asyncio.run(submit(arguments.dsn, arguments.runs, arguments.clients))
        print(json.dumps(times), flush=True)

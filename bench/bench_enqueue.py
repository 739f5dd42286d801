"""Starting runs from an application's own transactions (`app.client`) on PostgreSQL.

    .venv/bin/python -m bench.bench_enqueue [--runs 10000] [--connections 16] [--batch 100]
        [--rounds 2]

For each round: a fresh database, migrated, the 3-step chain registered (through the API, which
then stops: no worker runs). Then --runs runs started through `app.client` on asyncpg
connections, three ways, each on its own fresh database:

- one run per transaction (`start_run`, then commit), from --connections connections;
- transactions of --batch runs, one `start_run` call each, from --connections connections;
- transactions of one `start_runs` call of --batch runs, from --connections connections.

Prints runs queued per second for each way (from the first call to the last commit), and checks
that the database holds exactly --runs queued runs with their tasks. Submission only: bench_workers
drains a queue. The machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import httpx

from app.client import start_run, start_runs
from app.store.migrations import upgrade_url
from bench.bench_api import postgres_database, server
from bench.bench_batch import check_queued
from bench.bench_workers import FLOWS, database_url, dsn

Submit = Callable[[asyncpg.Connection, str, list[int]], Awaitable[None]]


async def one_per_transaction(connection: asyncpg.Connection, flow: str, ns: list[int]) -> None:
    for n in ns:
        async with connection.transaction():
            await start_run(connection, flow, {"n": n})


async def calls_in_one_transaction(
    connection: asyncpg.Connection, flow: str, ns: list[int]
) -> None:
    async with connection.transaction():
        for n in ns:
            await start_run(connection, flow, {"n": n})


async def one_call_in_one_transaction(
    connection: asyncpg.Connection, flow: str, ns: list[int]
) -> None:
    async with connection.transaction():
        await start_runs(connection, flow, [{"n": n} for n in ns])


def chunks(runs: int, size: int) -> Iterator[list[int]]:
    for start in range(0, runs, size):
        yield list(range(start, min(runs, start + size)))


async def measure(submit: Submit, runs: int, connections: int, size: int) -> float:
    """Runs queued per second, on a fresh database; the queue checked afterwards."""
    flow = FLOWS["chain"]
    async with postgres_database() as name:
        url = database_url(name)
        await asyncio.to_thread(upgrade_url, url)
        with server(url, {"EMBEDDED_WORKER": "false", "MIGRATE_ON_START": "false"}) as base:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                registered = await client.post(
                    "/flows", content=flow.source, headers={"content-type": "application/yaml"}
                )
                if registered.status_code != 201:
                    raise RuntimeError(f"registering: {registered.status_code} {registered.text}")
        pool = [await asyncpg.connect(dsn(name)) for _ in range(connections)]
        try:
            work = chunks(runs, size)

            async def one_connection(connection: asyncpg.Connection) -> None:
                for ns in work:
                    await submit(connection, flow.name, ns)

            began = time.perf_counter()
            await asyncio.gather(*(one_connection(connection) for connection in pool))
            elapsed = time.perf_counter() - began
            await check_queued(pool[0], runs)
        finally:
            for connection in pool:
                await connection.close()
    return runs / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args()
    connections, batch = arguments.connections, arguments.batch
    print(f"{arguments.runs} runs of the 3-step chain started through app.client on PostgreSQL")
    ways: list[tuple[str, Submit, int]] = [
        (f"one per transaction, {connections} conns", one_per_transaction, 1),
        (f"{batch} start_run per tx, {connections} conns", calls_in_one_transaction, batch),
        (f"start_runs({batch}) per tx, {connections} conns", one_call_in_one_transaction, batch),
    ]
    figures: dict[str, list[float]] = {label: [] for label, _, _ in ways}
    for _ in range(arguments.rounds):  # interleaved: the machine's noise falls on each
        for label, submit, size in ways:
            rate = await measure(submit, arguments.runs, connections, size)
            figures[label].append(rate)
            print(f"  {label:<38} {rate:8.0f} runs/s")
    print()
    for label, rates in figures.items():
        print(f"{label:<40} {min(rates):6.0f} - {max(rates):6.0f} runs/s")


if __name__ == "__main__":
    asyncio.run(main())

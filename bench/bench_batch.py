"""Submitting runs through the API on PostgreSQL: one per request, against batches.

    .venv/bin/python -m bench.bench_batch [--runs 10000] [--batch 1000] [--rounds 2]

For each round: a fresh database, migrated; one API process (EMBEDDED_WORKER=false: it only
queues) and the 3-step chain registered. Then --runs runs submitted through `POST
/flows/{name}/runs`, two ways, each on its own fresh database:

- one run per request, from 16 concurrent clients (as bench_workers queues);
- batches of --batch runs (`{"runs": [...]}`, one transaction each), from 4 concurrent clients.

Prints runs queued per second for each way (from the first request to the last answer), and
checks that the database holds exactly --runs queued runs with their tasks. Submission only:
no worker runs them (bench_workers drains a queue). The machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
import httpx

from app.store.migrations import upgrade_url
from bench.bench_api import postgres_database, server
from bench.bench_workers import FLOWS, database_url, dsn

SINGLE_CLIENTS = 16
BATCH_CLIENTS = 4

Submit = Callable[[httpx.AsyncClient, str, int, int], Awaitable[None]]


async def one_per_request(client: httpx.AsyncClient, flow: str, runs: int, _: int) -> None:
    numbers = iter(range(runs))

    async def one_client() -> None:
        for n in numbers:
            answer = await client.post(f"/flows/{flow}/runs", json={"inputs": {"n": n}})
            if answer.status_code != 202:
                raise RuntimeError(f"queueing: {answer.status_code} {answer.text}")

    await asyncio.gather(*(one_client() for _ in range(SINGLE_CLIENTS)))


async def in_batches(client: httpx.AsyncClient, flow: str, runs: int, batch: int) -> None:
    starts = iter(range(0, runs, batch))

    async def one_client() -> None:
        for start in starts:
            body = {"runs": [{"inputs": {"n": n}} for n in range(start, min(runs, start + batch))]}
            answer = await client.post(f"/flows/{flow}/runs", json=body)
            if answer.status_code != 202 or len(answer.json()["runs"]) != len(body["runs"]):
                raise RuntimeError(f"queueing a batch: {answer.status_code} {answer.text[:300]}")

    await asyncio.gather(*(one_client() for _ in range(BATCH_CLIENTS)))


async def measure(submit: Submit, runs: int, batch: int) -> float:
    """Runs queued per second, on a fresh database; the queue checked afterwards."""
    flow = FLOWS["chain"]
    async with postgres_database() as name:
        url = database_url(name)
        await asyncio.to_thread(upgrade_url, url)
        settings = {"EMBEDDED_WORKER": "false", "MIGRATE_ON_START": "false"}
        with server(url, settings) as base:
            limits = httpx.Limits(max_connections=SINGLE_CLIENTS)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
                registered = await client.post(
                    "/flows", content=flow.source, headers={"content-type": "application/yaml"}
                )
                if registered.status_code != 201:
                    raise RuntimeError(f"registering: {registered.status_code} {registered.text}")
                began = time.perf_counter()
                await submit(client, flow.name, runs, batch)
                elapsed = time.perf_counter() - began
        connection = await asyncpg.connect(dsn(name))
        try:
            await check_queued(connection, runs)
        finally:
            await connection.close()
    return runs / elapsed


async def check_queued(connection: asyncpg.Connection, runs: int) -> None:
    """The database holds `runs` queued runs of the 3-step chain and their tasks, or raise."""
    queued = await connection.fetchval("SELECT count(*) FROM flow_runs WHERE status = 'queued'")
    tasks = await connection.fetchval("SELECT count(*) FROM task_runs")
    if queued != runs or tasks != 3 * runs:
        raise RuntimeError(f"expected {runs} queued runs and {3 * runs} tasks: {queued}, {tasks}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args()
    print(f"{arguments.runs} runs of the 3-step chain queued through the API on PostgreSQL")
    ways: list[tuple[str, Submit]] = [
        (f"one per request, {SINGLE_CLIENTS} clients", one_per_request),
        (f"batches of {arguments.batch}, {BATCH_CLIENTS} clients", in_batches),
    ]
    figures: dict[str, list[float]] = {label: [] for label, _ in ways}
    for _ in range(arguments.rounds):  # interleaved: the machine's noise falls on both
        for label, submit in ways:
            rate = await measure(submit, arguments.runs, arguments.batch)
            figures[label].append(rate)
            print(f"  {label:<32} {rate:8.0f} runs/s")
    print()
    for label, rates in figures.items():
        print(f"{label:<34} {min(rates):6.0f} - {max(rates):6.0f} runs/s")


if __name__ == "__main__":
    asyncio.run(main())

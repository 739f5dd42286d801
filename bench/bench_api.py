"""`POST /flows/{name}/execute` of a 3-step `set` chain against a real uvicorn process.

    .venv/bin/python -m bench.bench_api [--store sqlite|postgresql|both] [--requests 2000]
        [--auth off|on|both] [--rounds 1]

For each store: one uvicorn process (one worker), the chain registered, then requests from
1 and from 16 concurrent clients. Prints requests/s, p50 and p99 latency, and the store's
commits per run (PostgreSQL: pg_stat_database.xact_commit; SQLite: counted in-process on an
identical service, SQLAlchemy's and the fast path's group commits). Targets on a 2-core machine
with PostgreSQL: p50 <= 10 ms for one client, >= 400 runs/s with 16 clients; SQLite at least as
fast as PostgreSQL on both.

With `--store both`, each round measures SQLite then PostgreSQL, and the end prints SQLite's
runs/s and p50 over PostgreSQL's for each round and their median: `--rounds 4` or more on a
machine whose speed drifts.

`--auth on` serves with AUTH=on and sends an API key with every request (the key's check, its
cache, the permission check and the run rate limiter, set too high to refuse, all on the
path); `both` alternates servers without and with it, `--rounds` times (A, B, A, B), since
this machine's speed drifts more than the difference measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import httpx
import uvloop
from sqlalchemy import event

from bench.flows import CHAIN

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(
    database_url: str, settings: Mapping[str, str] | None = None, *, as_users_start_it: bool = False
) -> Iterator[str]:
    """A uvicorn process (one worker) serving the API on `database_url`; its base URL.

    `settings`: more environment for it (the service's settings), over the defaults here.
    `as_users_start_it`: through `python -m app serve`, with the connection limits it adds
    (keep-alive, request heads), rather than uvicorn's own command line.
    """
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MIGRATE_ON_START": "true",
        "LOG_LEVEL": "warning",
        **(settings or {}),
    }
    if as_users_start_it:
        command = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    else:
        command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
        command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_healthy(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


@dataclass(frozen=True)
class Measurement:
    rate: float  # requests/s
    p50: float  # ms
    p99: float  # ms
    client_cpu: float  # ms of the load generator's CPU per request


async def measure(
    base: str, clients: int, requests: int, headers: Mapping[str, str] | None = None
) -> Measurement:
    """`requests` executions spread over `clients` keep-alive connections.

    The load generator shares the machine's two cores with the server and PostgreSQL, so it
    is aiohttp: httpx spent 1.1–1.3 ms of CPU per request here, as much as the server itself,
    and aiohttp 0.15–0.3 ms. `client_cpu` shows what it took.
    """
    latencies: list[float] = []
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=clients)
    cpu_before = time.process_time()
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as client:

        async def one_client() -> None:
            for n in counter:
                started = time.perf_counter()
                async with client.post("/flows/Chain/execute", json={"inputs": {"n": n}}) as answer:
                    body = await answer.json()
                latencies.append((time.perf_counter() - started) * 1000)
                if answer.status != 200 or body["outputs"] != {"z": n * 2 + 1}:
                    raise RuntimeError(f"unexpected answer {answer.status}: {body}")

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    client_cpu = (time.process_time() - cpu_before) * 1000 / requests
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Measurement(requests / elapsed, statistics.median(latencies), p99, client_cpu)


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    name = f"fm_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield name
    finally:
        admin = await asyncpg.connect(ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def postgres_commits(name: str) -> int:
    connection = await asyncpg.connect(ADMIN)
    try:
        value = await connection.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", name
        )
        return int(value)
    finally:
        await connection.close()


async def sqlite_commits_per_run(url: str) -> float:
    """Commits of one execution, counted in-process on the same service stack."""
    from app.services.container import Services
    from app.settings import Settings

    services = await Services.open(Settings(_env_file=None, database_url=url))
    commits = 0

    def count(_connection: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(services.store.engine.sync_engine, "commit", count)
    try:
        caller = await services.users.local_admin()
        await services.flows.register(caller, CHAIN)
        runs = 50
        fast = services.run_store.fast  # its group commits run on the connection's thread
        before = commits + (fast.commits if fast else 0)
        for n in range(runs):
            await services.runs.execute(caller, "Chain", {"n": n}, wait=30)
        return (commits + (fast.commits if fast else 0) - before) / runs
    finally:
        await services.close()


BENCH_KEY = "fm_bench-admin-key-" + uuid.uuid4().hex  # ADMIN_API_KEY of an --auth on server
WITH_AUTH = {"AUTH": "on", "ADMIN_API_KEY": BENCH_KEY, "RUNS_PER_MINUTE": str(10**9)}


async def bench_store(store: str, requests: int, auth: bool) -> dict[int, Measurement]:
    """The store's measurements, by number of clients."""
    with tempfile.TemporaryDirectory() as directory:
        if store == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
            measured = await report(store, url, requests, None, auth)
            print(f"  commits per run: {await sqlite_commits_per_run(url):.1f}")
            return measured
        async with postgres_database() as name:
            url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
            return await report(store, url, requests, name, auth)


async def report(
    store: str, url: str, requests: int, pg_name: str | None, auth: bool
) -> dict[int, Measurement]:
    headers = {"Authorization": f"Bearer {BENCH_KEY}"} if auth else {}
    with server(url, WITH_AUTH if auth else None) as base:
        await wait_for_key(base, headers)
        async with httpx.AsyncClient(base_url=base, headers=headers) as client:
            await client.post("/flows", content=CHAIN, headers={"content-type": "application/yaml"})
        await measure(base, 4, 200, headers)  # warm-up: imports, pools, caches
        measurements = {}
        for clients in (1, 16):
            before = await postgres_commits(pg_name) if pg_name else 0
            measured = await measure(base, clients, requests, headers)
            line = (
                f"{store:<10} auth {'on ' if auth else 'off'} "
                f"{clients:>2} clients: {measured.rate:7.1f} runs/s"
                f"  p50 {measured.p50:6.2f} ms  p99 {measured.p99:6.2f} ms"
                f"  client CPU {measured.client_cpu:.2f} ms/request"
            )
            if pg_name:
                commits = (await postgres_commits(pg_name) - before) / requests
                line += f"  commits/run {commits:.1f}"
            print(line, flush=True)
            measurements[clients] = measured
    return measurements


async def wait_for_key(base: str, headers: Mapping[str, str]) -> None:
    """ADMIN_API_KEY is installed in the background as the server starts."""
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=base, headers=headers) as client:
        while (await client.get("/me")).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the server never accepted the key")
            await asyncio.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--auth", choices=["off", "on", "both"], default="off")
    parser.add_argument("--rounds", type=int, default=1, help="repeat (A, B, A, B with both)")
    arguments = parser.parse_args()
    stores = ["sqlite", "postgresql"] if arguments.store == "both" else [arguments.store]
    modes = {"off": [False], "on": [True], "both": [False, True]}[arguments.auth]
    rounds: list[dict[tuple[str, bool], dict[int, Measurement]]] = []
    for _ in range(arguments.rounds):  # A, B, A, B: this machine's speed drifts
        measured = {}
        for store in stores:
            for auth in modes:
                # The server's loop, and lighter.
                measured[store, auth] = uvloop.run(bench_store(store, arguments.requests, auth))
        rounds.append(measured)
    if len(stores) == 2:
        print_ratios(rounds, modes)


def print_ratios(
    rounds: list[dict[tuple[str, bool], dict[int, Measurement]]], modes: list[bool]
) -> None:
    """SQLite's runs/s over PostgreSQL's, measured one after the other in each round (the
    target: at least 1 with 16 clients), and its p50 over PostgreSQL's (at most 1 with one)."""
    for auth in modes:
        for clients in (1, 16):
            pairs = [(r["sqlite", auth][clients], r["postgresql", auth][clients]) for r in rounds]
            rates = [sqlite.rate / postgresql.rate for sqlite, postgresql in pairs]
            p50s = [sqlite.p50 / postgresql.p50 for sqlite, postgresql in pairs]
            print(
                f"SQLite / PostgreSQL, auth {'on ' if auth else 'off'} {clients:>2} clients:"
                f" runs/s {', '.join(f'{ratio:.2f}' for ratio in rates)}"
                f" (median {statistics.median(rates):.2f});"
                f" p50 {', '.join(f'{ratio:.2f}' for ratio in p50s)}"
                f" (median {statistics.median(p50s):.2f})"
            )


if __name__ == "__main__":
    main()

"""The dashboard's run list with 100,000 runs in the store: `GET /runs` pages over HTTP.

    .venv/bin/python -m bench.bench_pages [--store sqlite|postgresql|both] [--runs 100000]
        [--requests 200]

For each store: a server (authentication on), 100,000 runs of 20 flows written straight into
its tables (one in 7 failed, one in 1000 running), then `--requests` requests from one client
for each page the dashboard asks for: the newest runs, a flow's, the failed ones, a flow's
failed ones, and a page 20 pages deep (following `next_cursor`, as "Older runs" does). Prints
p50 and p99 per page. What to look for: no page much slower than the newest, however deep or
narrow (a page that read the table would take seconds); tests/store/test_pages_at_scale.py
checks PostgreSQL's plans (no full scan) on the same data.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvloop
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from app.store.models import DEFINITIONS, RUNS, USERS
from bench.bench_api import BENCH_KEY, WITH_AUTH, postgres_database, server, wait_for_key

FLOWS = 20
BATCH = 5_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEPTH = 20  # pages followed for the deep page


def flow_source(index: int) -> str:
    return f"flow: F{index:02}\nsteps:\n  - set: {{id: a, values: {{x: 1}}}}\n"


async def seed(url: str, runs: int) -> None:
    """`runs` runs spread over the flows, written straight into the store's tables."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            named = select(DEFINITIONS.c.name, DEFINITIONS.c.id)
            versions = {row.name: row.id for row in await connection.execute(named)}
            admin = select(USERS.c.id).where(USERS.c.is_admin)
            created_by = (await connection.execute(admin)).scalar()
            for start in range(1, runs + 1, BATCH):
                numbers = range(start, min(start + BATCH, runs + 1))
                rows = [_run(i, versions, created_by) for i in numbers]
                await connection.execute(insert(RUNS), rows)
    finally:
        await engine.dispose()


def _run(i: int, versions: Mapping[str, int], created_by: Any) -> dict[str, Any]:
    name = f"F{i % FLOWS:02}"
    status = "running" if i % 1000 == 1 else "failed" if i % 7 == 0 else "completed"
    return {
        "id": str(uuid.UUID(int=i)),  # cursors carry run ids, which are UUIDs
        "flow_name": name,
        "definition_id": versions[name],
        "status": status,
        "inputs": {},
        "remaining_steps": 0,
        "created_at": T0 + timedelta(seconds=i),
        "created_by": created_by,
    }


async def timed(client: httpx.AsyncClient, path: str, requests: int) -> tuple[float, float]:
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = await client.get(path)
        latencies.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    latencies.sort()
    return statistics.median(latencies), latencies[max(0, int(len(latencies) * 0.99) - 1)]


async def deep_cursor(client: httpx.AsyncClient) -> str:
    """The cursor of the page DEPTH pages down, as "Older runs" reaches it."""
    parameters = {"limit": "50"}
    for _ in range(DEPTH):
        answer = await client.get("/runs", params=parameters)
        answer.raise_for_status()
        parameters["cursor"] = answer.json()["next_cursor"]
    return parameters["cursor"]


async def bench_store(store: str, runs: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        if store == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
            await report(store, url, runs, requests)
        else:
            async with postgres_database() as name:
                url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
                await report(store, url, runs, requests)


async def report(store: str, url: str, runs: int, requests: int) -> None:
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    yaml = {"content-type": "application/yaml"}
    with server(url, WITH_AUTH) as base:
        await wait_for_key(base, headers)
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            for index in range(FLOWS):
                registered = await client.post("/flows", content=flow_source(index), headers=yaml)
                registered.raise_for_status()
            started = time.perf_counter()
            await seed(url, runs)
            took = time.perf_counter() - started
            print(f"{store}: {runs} runs written in {took:.1f} s", flush=True)
            pages = {
                "newest": "/runs?limit=50",
                "of a flow": "/runs?limit=50&flow=F07",
                "failed": "/runs?limit=50&status=failed",
                "running": "/runs?limit=50&status=running",
                "failed of a flow": "/runs?limit=50&flow=F07&status=failed",
                f"{DEPTH} pages deep": f"/runs?limit=50&cursor={await deep_cursor(client)}",
            }
            for page, path in pages.items():
                await timed(client, path, 5)  # warm-up
                p50, p99 = await timed(client, path, requests)
                print(f"  {store:<10} {page:<18} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    arguments = parser.parse_args()
    stores = ["sqlite", "postgresql"] if arguments.store == "both" else [arguments.store]
    for store in stores:
        uvloop.run(bench_store(store, arguments.runs, arguments.requests))


if __name__ == "__main__":
    main()

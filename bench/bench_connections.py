"""Connection resets under load: many clients against `python -m app serve` for a minute.

    .venv/bin/python -m bench.bench_connections [--clients 64] [--seconds 60]
        [--store sqlite|postgresql] [--keep-alive SECONDS]

The server is started as users start it (`python -m app serve`). Each client is a service of
its own: an `httpx.AsyncClient` with its default pool, which keeps an idle connection for
`KEEPALIVE_EXPIRY` (5 s). Half the clients start runs (`POST /flows/Chain/runs`) back to back,
keeping the server busy; the other half send bursts separated by pauses just short of that
expiry, so each of their next requests goes out on a connection that has been idle for almost
5 s, the moment a server with a shorter keep-alive than the client's closes it.

Prints the requests, their rate and latency, the answers by status and every transport error
by kind; exits 1 on any transport error (a reset, a refused connection, a timeout) or any 5xx,
or when the server closes an idle connection before the clients' pools would (the cause of
those resets, which show in only some runs). `--keep-alive 5` (uvicorn's own default) shows
them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.bench_api import postgres_database, server
from bench.flows import CHAIN

KEEPALIVE_EXPIRY = httpx.Limits().keepalive_expiry or 5.0  # httpx's default pool keeps idle 5 s
# How long before the client's expiry a pausing client sends again: the client still reuses
# the connection, whose server side has been idle for as long plus the answer's trip.
BOUNDARY = (0.01, 0.15)
BURST_SECONDS = (0.3, 1.0)
IDLE_MARGIN_SECONDS = 1.0  # past the client's expiry, for the client's own scheduling


@dataclass
class Tally:
    """What the clients saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # ms
    boundary_reuses: int = 0  # requests sent on a connection idle for almost KEEPALIVE_EXPIRY
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def failures(self) -> int:
        server_errors = sum(count for status, count in self.statuses.items() if status >= 500)
        return sum(self.errors.values()) + server_errors

    def summary(self) -> str:
        latencies = sorted(self.latencies) or [0.0]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        rate = self.requests / self.seconds
        lines = [
            f"{self.requests} requests in {self.seconds:.1f} s ({rate:.0f}/s), "
            f"p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms",
            f"{self.boundary_reuses} requests on connections idle for "
            f"{KEEPALIVE_EXPIRY - BOUNDARY[1]:.2f}-{KEEPALIVE_EXPIRY - BOUNDARY[0]:.2f} s",
            f"answers: {dict(sorted(self.statuses.items()))}",
            f"transport errors: {dict(self.errors) or 'none'}",
        ]
        return "\n".join(lines)


async def hammer(
    base: str,
    *,
    clients: int,
    seconds: float,
    burst_seconds: tuple[float, float] = BURST_SECONDS,
    seed: int = 0,
) -> Tally:
    """`clients` clients starting runs of the Chain flow for `seconds`; half busy, half pausing
    at the keep-alive boundary after bursts of `burst_seconds` (see the module's docstring)."""
    tally = Tally()
    started = time.monotonic()
    deadline = started + seconds

    async def post(client: httpx.AsyncClient, n: int) -> None:
        sent = time.perf_counter()
        try:
            answer = await client.post("/flows/Chain/runs", json={"inputs": {"n": n}})
        except httpx.TransportError as error:  # the reset this is about, among others
            tally.errors[f"{type(error).__name__}: {error}"[:120]] += 1
            return
        tally.latencies.append((time.perf_counter() - sent) * 1000)
        tally.statuses[answer.status_code] += 1

    async def busy(client: httpx.AsyncClient, rng: random.Random) -> None:
        while time.monotonic() < deadline:
            await post(client, rng.randrange(1000))

    async def pausing(client: httpx.AsyncClient, rng: random.Random) -> None:
        while True:
            burst_end = time.monotonic() + rng.uniform(*burst_seconds)
            await post(client, rng.randrange(1000))  # at least one: the connection to reuse
            while time.monotonic() < min(burst_end, deadline):
                await post(client, rng.randrange(1000))
            pause = KEEPALIVE_EXPIRY - rng.uniform(*BOUNDARY)
            if time.monotonic() + pause >= deadline:
                return
            await asyncio.sleep(pause)
            tally.boundary_reuses += 1

    async def one_client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await (busy if index % 2 else pausing)(client, rng)

    await asyncio.gather(*(one_client(index) for index in range(clients)))
    tally.seconds = time.monotonic() - started
    return tally


async def seconds_until_idle_close(base: str) -> float | None:
    """After one request, how long the server keeps the connection open while it is idle, if
    it closes it within the client's expiry and a margin (None: it does not). A server that
    closes first makes the clients' race with it possible; this tells without waiting for it."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if b"content-length" in line
        )
        await reader.readexactly(length)
        idle_since = time.monotonic()
        try:
            async with asyncio.timeout(KEEPALIVE_EXPIRY + IDLE_MARGIN_SECONDS):
                await reader.read(1)  # b"" when the server closes
        except TimeoutError:
            return None
        return time.monotonic() - idle_since
    finally:
        writer.close()


async def register_chain(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        answer = await client.post(
            "/flows", content=CHAIN, headers={"content-type": "application/yaml"}
        )
        answer.raise_for_status()


@asynccontextmanager
async def store_url(store: str) -> AsyncIterator[str]:
    if store == "postgresql":
        async with postgres_database() as name:
            yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        return
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"


async def run(arguments: argparse.Namespace) -> int:
    settings = {"KEEP_ALIVE_SECONDS": str(arguments.keep_alive)} if arguments.keep_alive else {}
    async with store_url(arguments.store) as url:
        with server(url, settings, as_users_start_it=True) as base:
            await register_chain(base)
            probe = asyncio.create_task(seconds_until_idle_close(base))
            tally = await hammer(base, clients=arguments.clients, seconds=arguments.seconds)
            closed_after = await probe
    keep_alive = arguments.keep_alive or "default"
    print(f"{arguments.store}, {arguments.clients} clients, server keep-alive {keep_alive}")
    print(tally.summary())
    if closed_after is not None:
        print(
            f"the server closed an idle connection after {closed_after:.1f} s, before the "
            f"clients' pools would ({KEEPALIVE_EXPIRY} s): their next request may be reset"
        )
    return 1 if tally.failures or closed_after is not None else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--keep-alive", type=int, help="KEEP_ALIVE_SECONDS for the server")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()

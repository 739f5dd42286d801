# mypy: disallow-untyped-decorators=False
"""W3 (the 3-step chain) on DBOS, for bench/bench_e2e.py. Runs with bench/.peers-venv.

    python -m bench.peers dbos setup --dsn DSN --concurrency C --polling P
    python -m bench.peers dbos worker --dsn DSN --name NAME
    python -m bench.peers dbos submit --dsn DSN --runs R --clients K
    python -m bench.peers dbos check --dsn DSN

A workflow `w3(n)` of three `@DBOS.step`s (x = n+1, y = 2x, z = y-1), returning `{"z": z}`.
`setup` launches DBOS once on the fresh database (its migrations) and registers the queue
`w3` with `worker_concurrency` C (the most workflows one process runs at once; DBOS
requires a distinct `executor_id` per process for it, which `worker` sets) and
`polling_interval_sec` P (DBOS's default, 1 s, would cap a process at C workflows a
second). `worker` launches DBOS, which dequeues from every queue of the application, and
prints `bench-worker ready` on stdout once its thread for the queue runs.

`submit` enqueues `w3(n)` with `DBOSClient.enqueue` (DBOS's client for code outside the
application) from K threads at once, and prints, as JSON, the epoch time of the first
submission and of the last. `check` reads every workflow back through the client and
prints, as JSON, how many succeeded and how many returned z = 2n+1.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dbos import DBOS, DBOSClient, DBOSConfig  # type: ignore[import-not-found]  # peers' venv

APPLICATION = "w3bench"
QUEUE = "w3"
POOL_SIZE = 20  # connections per process at most: Flow Manager's default pool_size
READY = "bench-worker ready"


@DBOS.step()
def step_a(n: int) -> int:
    return n + 1


@DBOS.step()
def step_b(x: int) -> int:
    return x * 2


@DBOS.step()
def step_c(y: int) -> int:
    return y - 1


@DBOS.workflow(name="w3")
def w3(n: int) -> dict[str, int]:
    return {"z": step_c(step_b(step_a(n)))}


def sqlalchemy_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1)


def launch(dsn: str, executor: str) -> None:
    config: DBOSConfig = {
        "name": APPLICATION,
        "system_database_url": sqlalchemy_url(dsn),
        "sys_db_pool_size": POOL_SIZE,
        "executor_id": executor,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()


def setup(dsn: str, concurrency: int, polling: float) -> None:
    launch(dsn, "setup")
    try:
        DBOS.register_queue(
            QUEUE,
            worker_concurrency=concurrency,
            polling_interval_sec=polling,
            on_conflict="always_update",
        )
    finally:
        DBOS.destroy()


def work(dsn: str, name: str) -> None:
    """Until SIGTERM; then DBOS finishes what it runs (what it does not, it recovers later)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    launch(dsn, name)
    deadline = time.monotonic() + 30
    while not any(thread.name == f"queue-worker-{QUEUE}" for thread in threading.enumerate()):
        if time.monotonic() > deadline:
            sys.exit(f"DBOS started no thread for the queue {QUEUE!r} in 30 s")
        time.sleep(0.02)
    print(READY, flush=True)
    stop.wait()
    DBOS.destroy(workflow_completion_timeout_sec=30)


def client(dsn: str, pool_size: int) -> DBOSClient:
    return DBOSClient(
        system_database_url=sqlalchemy_url(dsn),
        system_database_pool_size=pool_size,
        application_name=APPLICATION,
    )


def submit(dsn: str, runs: int, clients: int) -> dict[str, float]:
    dbos = client(dsn, clients)
    numbers = iter(range(runs))
    lock = threading.Lock()
    first: list[float] = []

    def one_client() -> None:
        while True:
            with lock:  # `next` on a shared iterator is not thread-safe
                n = next(numbers, None)
                if n is None:
                    return
                if not first:
                    first.append(time.time())
            dbos.enqueue({"workflow_name": "w3", "queue_name": QUEUE}, n)

    try:
        with ThreadPoolExecutor(clients) as pool:
            for future in [pool.submit(one_client) for _ in range(clients)]:
                future.result()
        return {"first": first[0], "submitted": time.time()}
    finally:
        dbos.destroy()


def check(dsn: str) -> dict[str, int]:
    dbos = client(dsn, 2)
    try:
        statuses = dbos.list_workflows(name="w3", load_input=True, load_output=True)
    finally:
        dbos.destroy()
    succeeded = [status for status in statuses if status.status == "SUCCESS"]
    correct = sum(1 for status in succeeded if right(status.input, status.output))
    return {"workflows": len(statuses), "succeeded": len(succeeded), "correct": correct}


def right(inputs: Any, output: Any) -> bool:
    n = inputs["args"][0] if isinstance(inputs, dict) else inputs[0]
    return isinstance(output, dict) and output.get("z") == 2 * n + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["setup", "worker", "submit", "check"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--polling", type=float, default=0.1)
    parser.add_argument("--name", default="worker")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    arguments = parser.parse_args()
    if arguments.command == "setup":
        setup(arguments.dsn, arguments.concurrency, arguments.polling)
    elif arguments.command == "worker":
        work(arguments.dsn, arguments.name)
    elif arguments.command == "submit":
        print(json.dumps(submit(arguments.dsn, arguments.runs, arguments.clients)), flush=True)
    else:
        print(json.dumps(check(arguments.dsn)), flush=True)

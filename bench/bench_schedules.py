"""Many schedules firing together, on PostgreSQL, with several worker processes.

    .venv/bin/python -m bench.bench_schedules [--schedules 1000] [--minutes 5] [--workers 2]

A fresh database, migrated; the bench process registers the 3-step chain (`bench/flows.py`)
and makes --schedules schedules of it, every minute (`* * * * *`, overlap `allow`), each with
its own inputs. Then --workers `python -m app worker` processes run for --minutes whole
minutes: every process's scheduler fires whichever due schedules it locks, and the workers
run the runs. After the last tick (and a margin for its runs to be created), the workers are
stopped and every tick is counted from the runs' idempotency keys (one key per schedule and
tick): per tick, runs started, ticks missed (schedules that started no run for it) and
ticks doubled (a key with more than one run: never, by construction), with how late the
tick's last run was created and how many of its runs completed.

The exit status is 1 when a tick was missed or doubled, or a worker logged an error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from app.domain.schedules import Overlap
from app.services.container import Services
from app.services.schedules import ScheduleRequest
from app.settings import Settings
from app.store.migrations import upgrade_url
from bench.bench_api import postgres_database
from bench.flows import CHAIN

MARGIN_SECONDS = 20  # after the last tick: its runs are created (and most run) by then
POLL_SECONDS = 1.0


def database_url(name: str) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def dsn(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


async def make_schedules(url: str, count: int) -> None:
    """The chain and `count` every-minute schedules of it, made through the services."""
    settings = Settings(
        _env_file=None,
        database_url=url,
        migrate_on_start=False,
        embedded_worker=False,
        max_schedules_per_flow=count,
    )
    services = await Services.open(settings)
    try:
        admin = await services.users.local_admin()
        await services.flows.register(admin, CHAIN)
        for n in range(count):
            await services.schedules.create(
                admin,
                "Chain",
                ScheduleRequest(cron="* * * * *", inputs={"n": n}, overlap=Overlap.ALLOW),
            )
    finally:
        await services.close(grace=0)


def start_workers(url: str, count: int, logs: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning", "MIGRATE_ON_START": "false"}
    command = [sys.executable, "-m", "app", "worker"]
    workers = []
    for index in range(count):
        with (logs / f"worker-{index + 1}.log").open("wb") as log:
            workers.append(subprocess.Popen(command, env=env, stderr=log, stdout=log))
    return workers


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@dataclass(frozen=True)
class Tick:
    at: datetime
    started: int
    missed: int
    doubled: int
    late_seconds: float  # from the tick to the creation of its last run
    completed: int


async def count_ticks(name: str, ticks: list[datetime], schedules: int) -> list[Tick]:
    connection = await asyncpg.connect(dsn(name))
    try:
        rows = await connection.fetch(
            "SELECT idempotency_key, status, created_at FROM flow_runs WHERE flow_name = 'Chain'"
        )
    finally:
        await connection.close()
    per_key: Counter[str] = Counter()
    latest: dict[datetime, datetime] = {}
    completed: Counter[datetime] = Counter()
    for row in rows:
        key = row["idempotency_key"]
        per_key[key] += 1
        tick = datetime.fromisoformat(key.split(":", 2)[2])
        latest[tick] = max(latest.get(tick, row["created_at"]), row["created_at"])
        completed[tick] += row["status"] == "completed"
    keys_of: defaultdict[datetime, list[str]] = defaultdict(list)
    for key in per_key:
        keys_of[datetime.fromisoformat(key.split(":", 2)[2])].append(key)
    found = []
    for tick in ticks:
        keys = keys_of.get(tick, [])
        late = (latest[tick] - tick).total_seconds() if tick in latest else float("nan")
        found.append(
            Tick(
                at=tick,
                started=len(keys),
                missed=schedules - len(keys),
                doubled=sum(per_key[key] > 1 for key in keys),
                late_seconds=late,
                completed=completed[tick],
            )
        )
    return found


def worker_errors(logs: Path) -> list[str]:
    return [
        f"{path.name}: {line}"
        for path in sorted(logs.glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
        if line.startswith(("ERROR", "CRITICAL", "Traceback"))
    ]


async def bench(schedules: int, minutes: int, workers: int) -> int:
    async with postgres_database() as name:
        url = database_url(name)
        await asyncio.to_thread(upgrade_url, url)
        started = time.perf_counter()
        await make_schedules(url, schedules)
        print(f"{schedules} schedules made in {time.perf_counter() - started:.1f} s", flush=True)
        with tempfile.TemporaryDirectory() as directory:
            logs = Path(directory)
            launched = datetime.now(UTC)
            first = launched.replace(second=0, microsecond=0) + timedelta(minutes=1)
            ticks = [first + timedelta(minutes=n) for n in range(minutes)]
            end = ticks[-1] + timedelta(seconds=MARGIN_SECONDS)
            print(f"{workers} workers; ticks {ticks[0]:%H:%M} to {ticks[-1]:%H:%M} UTC", flush=True)
            running = start_workers(url, workers, logs)
            try:
                while datetime.now(UTC) < end:
                    if any(worker.poll() is not None for worker in running):
                        raise RuntimeError("a worker exited")
                    await asyncio.sleep(POLL_SECONDS)
            finally:
                stop_workers(running)
            errors = worker_errors(logs)
        counted = await count_ticks(name, ticks, schedules)
    header = ("tick (UTC)", "started", "missed", "doubled", "last run", "completed")
    print("\n{:<10} {:>8} {:>7} {:>8} {:>9} {:>10}".format(*header))
    for tick in counted:
        print(
            f"{tick.at:%H:%M:%S}   {tick.started:>8} {tick.missed:>7} {tick.doubled:>8} "
            f"{tick.late_seconds:>8.2f}s {tick.completed:>10}"
        )
    missed = sum(tick.missed for tick in counted)
    doubled = sum(tick.doubled for tick in counted)
    print(f"\ntotal: {sum(t.started for t in counted)} runs, {missed} missed, {doubled} doubled")
    for line in errors[:20]:
        print(line)
    return 1 if missed or doubled or errors else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--minutes", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(bench(arguments.schedules, arguments.minutes, arguments.workers)))


if __name__ == "__main__":
    main()

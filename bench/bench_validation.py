"""How long validating large definitions takes, and whether the server stays responsive.

    .venv/bin/python -m bench.bench_validation [--steps 5000]

1. In process: `FlowExecutor.parse` (load, parse, graph, every reference checked) of
   sequential and DAG definitions of 1/4, 1/2 and all of `--steps` steps; the best of three,
   with the time per step, which stays flat when validation is linear. Then what
   `POST /flows/validate` makes of the largest: its report (built in the parsing thread) and
   its JSON answer (written on the event loop).
2. Against a real uvicorn process (SQLite store): `/health` polled every 10 ms by a second
   client while each definition is registered (`POST /flows`) and validated
   (`POST /flows/validate`); the longest `/health` answer must stay under 50 ms. The worst
   of each route is printed last.

Prints figures; it is not a test (tests/dsl/test_graph.py, tests/services/test_flows.py and
tests/api/test_flows.py are).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

from app.engine.executor import FlowExecutor
from app.schemas.flows import ValidationResult
from app.services.flows import validation_report
from bench.bench_api import server

YAML = {"content-type": "application/yaml"}
HEALTH_INTERVAL = 0.01
HEALTH_TARGET_MS = 50.0


def sequential(count: int, name: str = "Sequential") -> str:
    """A chain: each step reads the one before it."""
    lines = [f"flow: {name}", "steps:", "  - set: {id: s0, values: {v: 0}}"]
    lines += [
        f'  - set: {{id: s{index}, values: {{v: "${{s{index - 1}.v + 1}}"}}}}'
        for index in range(1, count)
    ]
    lines.append(f'outputs: {{v: "${{s{count - 1}.v}}"}}')
    return "\n".join(lines) + "\n"


def dag(count: int, name: str = "Dag") -> str:
    """Each step reads the one before it and the one halfway back: a deep, wide DAG."""
    lines = [f"flow: {name}", "mode: dag", "steps:", "  - set: {id: s0, values: {v: 0}}"]
    lines += [
        f'  - set: {{id: s{index}, values: {{v: "${{s{index - 1}.v + s{index // 2}.v}}"}}}}'
        for index in range(1, count)
    ]
    lines.append(f'outputs: {{v: "${{s{count - 1}.v}}"}}')
    return "\n".join(lines) + "\n"


SHAPES: dict[str, Callable[..., str]] = {"sequential": sequential, "dag": dag}


def bench_in_process(steps: int) -> None:
    executor = FlowExecutor()
    print(f"validation in process (best of 3), up to {steps:,} steps")
    for shape, build in SHAPES.items():
        for count in (steps // 4, steps // 2, steps):
            source = build(count)
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                executor.parse(source)
                best = min(best, time.perf_counter() - started)
            print(
                f"  {shape:<10} {count:>6,} steps ({len(source) / 1024:5.0f} KiB): "
                f"{best * 1000:7.1f} ms  ({best / count * 1e6:5.1f} µs/step)",
                flush=True,
            )
    print(f"the answer of POST /flows/validate (best of 3), {steps:,} steps")
    for shape, build in SHAPES.items():
        definition = executor.parse(build(steps)).definition
        report_ms = best_ms(partial(validation_report, definition))
        report = validation_report(definition)
        answer_ms = best_ms(partial(ValidationResult.json_of, report))
        size = len(ValidationResult.json_of(report))
        print(
            f"  {shape:<10} report {report_ms:5.1f} ms (in the parsing thread); "
            f"JSON {answer_ms:5.1f} ms on the event loop ({size / 1024:.0f} KiB)",
            flush=True,
        )


def best_ms(work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best * 1000


async def health_while(
    client: httpx.AsyncClient, base: str, path: str | None, body: str = ""
) -> float:
    """POST `body` to `path` while another connection polls /health; print both, and return
    the longest /health answer (ms). Without a path, /health alone for a second: the
    machine's own noise, to compare with."""
    latencies: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        async with httpx.AsyncClient(base_url=base) as health:
            await health.get("/health")  # connected before the work starts
            while not done.is_set():
                started = time.perf_counter()
                answer = await health.get("/health")
                latencies.append((time.perf_counter() - started) * 1000)
                answer.raise_for_status()
                await asyncio.sleep(HEALTH_INTERVAL)

    poller = asyncio.create_task(poll())
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    if path is None:
        await asyncio.sleep(1)
    else:
        answer = await client.post(path, content=body, headers=YAML)
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")
    elapsed = time.perf_counter() - started
    done.set()
    await poller
    print(
        f"  {path or 'idle':<16} {elapsed * 1000:7.1f} ms; /health meanwhile: "
        f"{len(latencies)} answers, p50 {statistics.median(latencies):5.1f} ms, "
        f"max {max(latencies):5.1f} ms",
        flush=True,
    )
    return max(latencies)


async def bench_server(steps: int) -> None:
    print(f"/health while {steps:,}-step definitions are registered (uvicorn, SQLite)")
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        with server(url) as base:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                await health_while(client, base, None)
                paths = ("/flows", "/flows/validate")
                worst = dict.fromkeys(paths, 0.0)
                for shape, build in SHAPES.items():
                    print(f" {shape}")
                    for round_ in range(2):
                        source = build(steps, f"{shape.capitalize()}{round_}")
                        for path in paths:
                            longest = await health_while(client, base, path, source)
                            worst[path] = max(worst[path], longest)
    for path, longest in worst.items():
        verdict = "ok" if longest < HEALTH_TARGET_MS else "OVER"
        print(
            f"longest /health answer during POST {path}: {longest:5.1f} ms "
            f"(target < {HEALTH_TARGET_MS:.0f} ms: {verdict})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    arguments = parser.parse_args()
    bench_in_process(arguments.steps)
    asyncio.run(bench_server(arguments.steps))


if __name__ == "__main__":
    main()

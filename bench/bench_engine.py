"""Engine overhead with the in-memory store, in one process (no I/O in the tasks).

    .venv/bin/python -m bench.bench_engine [--runs 10000] [--elements 10000]

Prints steps/s for (1) a 3-step chain of `set` steps executed --runs times, one run after the
other, and (2) one `for_each` over --elements elements. Target on a 2-core machine: at least
10,000 steps/s for both, so that the engine is never the bottleneck once storage is added.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from app.engine import FlowExecutor
from app.engine.memory_store import InMemoryRunStore
from bench.flows import CHAIN

FAN_OUT = """
flow: FanOut
inputs: {items: array}
steps:
  - set:
      id: each
      for_each: ${inputs.items}
      max_concurrency: 10
      values: {double: "${item * 2}"}
outputs: {count: "${len(each.double)}"}
"""


async def chain(runs: int) -> float:
    executor = FlowExecutor(store=InMemoryRunStore(max_runs=100), env={})
    executor.load(CHAIN)  # parsing is cached; measure execution
    started = time.perf_counter()
    for n in range(runs):
        outputs = await executor.execute_flow(CHAIN, {"n": n})
        assert outputs == {"z": (n + 1) * 2 - 1}
    elapsed = time.perf_counter() - started
    return runs * 3 / elapsed


async def fan_out(elements: int) -> float:
    executor = FlowExecutor(env={})
    executor.load(FAN_OUT)
    started = time.perf_counter()
    outputs = await executor.execute_flow(FAN_OUT, {"items": list(range(elements))})
    elapsed = time.perf_counter() - started
    assert outputs == {"count": elements}
    return elements / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--elements", type=int, default=10_000)
    arguments = parser.parse_args()
    chain_rate = asyncio.run(chain(arguments.runs))
    fan_out_rate = asyncio.run(fan_out(arguments.elements))
    print(f"3-step set chain x {arguments.runs}: {chain_rate:,.0f} steps/s")
    print(f"for_each over {arguments.elements} elements: {fan_out_rate:,.0f} steps/s")


if __name__ == "__main__":
    main()

"""Flows the benchmarks share."""

CHAIN = """
flow: Chain
inputs: {n: integer}
steps:
  - set: {id: a, values: {x: "${inputs.n + 1}"}}
  - set: {id: b, values: {y: "${a.x * 2}"}}
  - set: {id: c, values: {z: "${b.y - 1}"}}
outputs: {z: "${c.z}"}
"""

# The chain with a concurrency limit: 10 keys (n mod 10), at most 10 runs of each at once.
LIMITED_CHAIN = """
flow: LimitedChain
inputs: {n: integer}
concurrency: {limit: 10, key: "k${inputs.n % 10}"}
steps:
  - set: {id: a, values: {x: "${inputs.n + 1}"}}
  - set: {id: b, values: {y: "${a.x * 2}"}}
  - set: {id: c, values: {z: "${b.y - 1}"}}
outputs: {z: "${c.z}"}
"""

# 1 -> 10 -> 1: a step, a fan-out of 10 elements that reads it, a step that sums the fan-out;
# 12 tasks a run. `total` is 10 * n + 55.
FAN_OUT_10 = """
flow: FanOut10
inputs: {n: integer}
steps:
  - set: {id: a, values: {x: "${inputs.n}"}}
  - set:
      id: each
      for_each: "${[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}"
      max_concurrency: 10
      values: {v: "${item + a.x}"}
  - set: {id: c, values: {total: "${sum(each.v)}"}}
outputs: {total: "${c.total}"}
"""

# 1 -> N -> 1 over the run's `items` (10,000 in bench_fanout): a step, a fan-out of `set`
# elements that reads it, a step that sums the fan-out. With SHARED_FAN_OUT_MIN at most N, the
# elements are claimed by every worker; `total` is sum(items) + N, `last` items[-1] + 1.
# A fan-out of a task with effects (`bench/tasks.py`, TASK_MODULES=bench.tasks): one of `set`
# stays in its run's process.
FAN_OUT_WIDE = """
flow: FanOutWide
inputs: {items: array}
steps:
  - set: {id: a, values: {x: 1}}
  - task: Values
    id: each
    for_each: "${inputs.items}"
    max_concurrency: 1000
    inputs: {values: {v: "${item + a.x}"}}
  - set: {id: c, values: {total: "${sum(each.v)}", count: "${len(each.v)}"}}
outputs: {total: "${c.total}", count: "${c.count}", last: "${each.v[-1]}"}
"""

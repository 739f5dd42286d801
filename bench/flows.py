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

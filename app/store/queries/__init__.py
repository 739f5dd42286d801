"""Every statement of a run's lifecycle, each written once, named by the transition it makes.

`versions`: the flow version a run starts; `runs`: creating, reading and ending runs;
`tasks`: the engine's transitions of tasks; `queue`: claims and leases. Where PostgreSQL has a
one-statement fast path (a writable CTE, one round trip), it sits next to the portable
statements of the same transition, so both are read at once.
"""

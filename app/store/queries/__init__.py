"""Every statement the service runs, each written once, by topic. The caller owns the
transaction (a session or a connection: `app/store/session.py`).

The run lifecycle: `versions` (the flow version a run starts, and every version of every
flow), `runs` (creating, reading and ending runs; `reads` the pages), `tasks` (the engine's
transitions of tasks), `queue` (claims and leases). Where PostgreSQL has a one-statement fast
path (a writable CTE, one round trip), it sits next to the portable statements of the same
transition, so both are read at once.

Trust and the rest: `flows` (ownership, visibility, shares), `users`, `credentials` (API keys
and sessions), `audit`, `secrets` (the service's own keys), `workers` (heartbeats).
"""

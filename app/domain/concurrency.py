"""Concurrency limits and priority (DESIGN.md section 9, "Concurrency and priority").

A flow's `concurrency: {limit, key}` lets at most `limit` runs of one key run at once; the
rest wait queued. Keys belong to their flow: the store keeps a run's key as `<flow>` (the
flow's default key) or `<flow>:<key>`, so two flows never share slots (a flow name holds no
`:`), and an author cannot hold back another owner's flow by naming its key.

A run's `priority` orders the queue: higher first, then first come first served.
"""

from __future__ import annotations

from dataclasses import dataclass

# A run's priority: POST /flows/{name}/runs and /execute refuse values outside (422).
MIN_PRIORITY, MAX_PRIORITY = -1000, 1000
# A definition's `concurrency.limit`: a count of runs at once (more is no limit).
MAX_CONCURRENCY_LIMIT = 10_000
# A rendered key's length in characters: the store keeps `<flow>:<key>` (64 + 1 + 128 < 200).
MAX_CONCURRENCY_KEY_LENGTH = 128


@dataclass(frozen=True)
class RunConcurrency:
    """A run's concurrency key as the store keeps it, and its limit."""

    stored_key: str
    limit: int

    @classmethod
    def of(cls, flow: str, key: str | None, limit: int) -> RunConcurrency:
        """`key`: the rendered `concurrency.key`; None: the flow's default key (the flow)."""
        return cls(flow if key is None else f"{flow}:{key}", limit)


def shown_key(flow: str, stored_key: str | None) -> str | None:
    """The key as the flow names it (its rendered `key`, or the flow's name) from the store's
    `<flow>` or `<flow>:<key>`."""
    if stored_key is None or stored_key == flow:
        return stored_key
    return stored_key.removeprefix(f"{flow}:")

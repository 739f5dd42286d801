"""How long a flow's finished runs are kept (DESIGN.md section 9, "Retention").

A flow's `retention: {days, max_runs}` (either or both) and the service's `RUN_RETENTION_DAYS`
(for flows that name no `days`) say which finished runs the pruner deletes: those created more
than `days` days ago, and those older than the flow's newest `max_runs` finished runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# Bounds a definition may declare: a century, and a count the pruner finds its place in
# cheaply (it walks that many index entries of the flow's runs once per round).
MAX_RETENTION_DAYS = 36_500
MAX_RETENTION_RUNS = 100_000
RETENTION_FIELDS = ("days", "max_runs")


@dataclass(frozen=True)
class Retention:
    """None: no limit of that kind."""

    days: int | None = None
    max_runs: int | None = None

    @classmethod
    def of_document(cls, data: Any) -> Retention:
        """The `retention:` of a stored definition (validated when it was registered); none
        for a definition without one, or in the condition-graph format."""
        raw = data.get("retention") if isinstance(data, Mapping) else None
        if not isinstance(raw, Mapping):
            return cls()
        return cls(_positive(raw.get("days")), _positive(raw.get("max_runs")))

    def or_days(self, default_days: int | None) -> Retention:
        """This retention, with `default_days` (RUN_RETENTION_DAYS) where it names no days."""
        return self if self.days is not None else Retention(default_days, self.max_runs)

    @property
    def keeps_everything(self) -> bool:
        return self.days is None and self.max_runs is None

    def age_cutoff(self, now: datetime) -> datetime | None:
        """Runs created before this are past `days`; None without `days`."""
        return None if self.days is None else now - timedelta(days=self.days)


def _positive(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value

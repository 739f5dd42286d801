"""Child runs: the port through which a step `- flow: Name` starts a run of another flow and
learns how it ended (DESIGN.md section 9, "Sub-flows").

The engine knows no flows but the one it runs: starting a child (finding the flow's version,
checking its inputs and the parent's right to run it, the depth limit) is the service's
(`app/services/children.py`). Starting is idempotent per parent step: a parent resumed after a
restart, or retried, finds the child it started; a retried parent resumes its failed or
cancelled child rather than starting a new one. Library use has no such port: the step fails,
saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.domain.runs import RunError, RunStatus


@dataclass(frozen=True)
class ChildEnd:
    """How a child run ended."""

    run_id: str
    status: RunStatus
    outputs: Mapping[str, Any] | None
    error: RunError | None


class ChildRuns(Protocol):
    async def start(
        self,
        parent_run_id: str,
        step_id: str,
        flow: str,
        inputs: Mapping[str, Any],
        version: int | None,
        resume_failed: bool,
    ) -> str:
        """The id of the step's child run: started now, or the one it started before, which
        `resume_failed` resumes when it failed or was cancelled (the parent was retried; a
        parent woken from its wait takes its child's end as it is). A `FlowManagerError` when
        it cannot start (unknown flow or version, invalid inputs, no right to run it,
        MAX_SUBFLOW_DEPTH)."""

    async def ended(self, run_id: str) -> ChildEnd | None:
        """How the child ended; None while it is queued or running."""

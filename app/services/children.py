"""`ChildRunService`: the engine's `ChildRuns` port in the service (DESIGN.md section 9,
"Sub-flows").

A step `- flow: Name` starts its child as the user who started the parent, who must be allowed
to run that flow; the child is an ordinary queued run of it, linked to its parent run and step
and one level deeper (MAX_SUBFLOW_DEPTH bounds the chain, so a flow may call itself, but not
forever). The parent parks while the child runs; the child's end wakes it (`runs.end`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain.access import Caller, rights_of
from app.domain.runs import RunError, RunStatus
from app.engine.children import ChildEnd
from app.errors import ChildRunError, SubflowDepthError
from app.services.ports import RunRepository
from app.services.runs import ParentStep, RunService


class ChildRunService:
    def __init__(self, runs: RunService, repository: RunRepository, max_depth: int) -> None:
        self.runs = runs
        self.repository = repository
        self.max_depth = max_depth

    async def start(
        self,
        parent_run_id: str,
        step_id: str,
        flow: str,
        inputs: Mapping[str, Any],
        version: int | None,
        resume_failed: bool,
    ) -> str:
        parent = await self.repository.lineage(parent_run_id)
        if parent is None or parent.user_id is None:
            raise ChildRunError(f"run {parent_run_id} has no user to start its child run as")
        depth = parent.depth + 1
        if depth > self.max_depth:
            raise SubflowDepthError(
                f"flow {flow!r} would run {depth} levels below its first parent; "
                f"MAX_SUBFLOW_DEPTH allows {self.max_depth}"
            )
        caller = Caller(
            user_id=parent.user_id,
            username=parent.username,
            is_admin=parent.is_admin,
            scopes=rights_of(parent.is_admin),
        )
        step = ParentStep(parent_run_id, step_id, depth)
        return await self.runs.start_child(caller, flow, inputs, version, step, resume_failed)

    async def ended(self, run_id: str) -> ChildEnd | None:
        child = await self.repository.get(run_id, with_steps=False)
        if child is None:  # deleted (its flow was): it will never end otherwise
            gone = RunError(None, "UnknownRunError", "the child run was deleted")
            return ChildEnd(run_id, RunStatus.CANCELLED, None, gone)
        if not child.finished:
            return None
        return ChildEnd(run_id, child.status, child.outputs, child.error)

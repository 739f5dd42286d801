"""`POST /flow/run`: the Flow Manager seed's endpoint for condition graphs.

The graph is registered under its `id` (a new version only when it changed) and executed in
this process; the answer lists the tasks that ran and the last one's outputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.domain.access import Caller
from app.domain.records import RunRecord
from app.dsl.condition_graph import is_condition_graph
from app.errors import DefinitionError, Problem
from app.services.flows import FlowService
from app.services.runs import RunService


@dataclass(frozen=True)
class GraphRun:
    run: RunRecord
    executed_tasks: tuple[str, ...]


class FlowManagerService:
    def __init__(self, flows: FlowService, runs: RunService, wait: float) -> None:
        self.flows = flows
        self.runs = runs
        self.wait = wait

    async def run(
        self, caller: Caller, graph: Mapping[str, Any], inputs: Mapping[str, Any]
    ) -> GraphRun:
        """Register the graph (a new flow owned by the caller, or a new version of one it may
        edit) and run it (which it may, then)."""
        if not is_condition_graph(graph):
            problem = Problem(("body", "flow"), "must be a condition graph with `start_task`")
            raise DefinitionError([problem])
        source = json.dumps(graph, indent=2, ensure_ascii=False)
        try:
            registration = await self.flows.register(caller, source, "json")
        except DefinitionError as error:  # point into the request body, not the re-dumped text
            raise DefinitionError(
                Problem(("body", "flow", *problem.loc), problem.msg, problem.type)
                for problem in error.problems
            ) from None
        started = await self.runs.execute(
            caller,
            registration.flow.name,
            inputs,
            version=registration.flow.version,
            wait=self.wait,
        )
        run = await self.runs.get(started.run.run_id)  # with its steps, which say what ran
        return GraphRun(run, run.executed_steps)

"""Request and answer of `POST /flow/run`, the Flow Manager seed's endpoint."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.domain.runs import RunStatus
from app.schemas.common import RequestModel
from app.services.flow_manager import GraphRun


def _task(name: str, description: str) -> dict[str, str]:
    return {"name": name, "description": description}


def _condition(source: str, target: str) -> dict[str, str]:
    return {
        "name": f"condition_{source}_result",
        "description": f"Evaluate result of {source}",
        "source_task": source,
        "outcome": "success",
        "target_task_success": target,
        "target_task_failure": "end",
    }


# examples/flow_manager/sample_request.json (a test keeps the two equal).
SAMPLE_REQUEST: dict[str, Any] = {
    "flow": {
        "id": "flow123",
        "name": "Data processing flow",
        "start_task": "task1",
        "tasks": [
            _task("task1", "Fetch data"),
            _task("task2", "Process data"),
            _task("task3", "Store data"),
        ],
        "conditions": [_condition("task1", "task2"), _condition("task2", "task3")],
    }
}


class GraphRunRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SAMPLE_REQUEST]})

    flow: dict[str, Any] = Field(
        description="a condition graph: {id, name, start_task, tasks, conditions}"
    )
    inputs: dict[str, Any] = Field(default_factory=dict, description="the run's inputs")


class GraphRunResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "flow_run_id": "9a0c7c1e-5a47-4d8e-9c33-0e4b9a1d2f10",
                    "status": "completed",
                    "executed_tasks": ["task1", "task2", "task3"],
                    "final_output": {"stored": True},
                }
            ]
        }
    )

    flow_run_id: str
    status: RunStatus
    executed_tasks: list[str] = Field(description="the tasks that ran, in order")
    final_output: Any | None = Field(description="the outputs of the last executed task")

    @classmethod
    def of(cls, result: GraphRun) -> GraphRunResult:
        return cls(
            flow_run_id=result.run.run_id,
            status=result.run.status,
            executed_tasks=list(result.executed_tasks),
            final_output=result.run.outputs,
        )

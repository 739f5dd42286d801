"""The Flow Manager seed's condition graph (seed 002) with the example tasks task1..task3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.domain.runs import RunStatus
from app.engine import FlowExecutor
from app.errors import DefinitionError
from app.tasks.loading import load_task_modules

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flow_manager"
SAMPLE = (EXAMPLE / "sample_flow.json").read_text()


@pytest.fixture
def executor() -> FlowExecutor:
    return FlowExecutor(load_task_modules([str(EXAMPLE / "tasks.py")]), env={})


async def test_sample_runs_fetch_process_store(executor: FlowExecutor) -> None:
    result = await executor.run(SAMPLE)

    assert result.status is RunStatus.COMPLETED
    assert result.executed_steps == ("task1", "task2", "task3")
    assert result.outputs == {"stored": True}


async def test_processing_sees_the_fetched_data(executor: FlowExecutor) -> None:
    graph = json.loads(SAMPLE)
    graph["conditions"] = graph["conditions"][:1]  # stop after task2

    result = await executor.run(json.dumps(graph), {"records": [1, 2, 5]})

    assert result.executed_steps == ("task1", "task2")
    assert result.outputs == {"records": [2, 4, 10], "total": 16}


async def test_failure_routed_to_end_ends_the_run_failed(executor: FlowExecutor) -> None:
    result = await executor.run(SAMPLE, {"source_down": True})

    assert result.status is RunStatus.FAILED
    assert result.executed_steps == ("task1",)
    assert result.error is not None
    assert result.error.step == "task1"
    assert result.error.message == "the data source is unavailable"


async def test_failure_routed_to_a_recovery_task_completes_the_run(executor: FlowExecutor) -> None:
    graph = json.loads(SAMPLE)
    graph["conditions"][0]["target_task_failure"] = "task3"

    result = await executor.run(json.dumps(graph), {"source_down": True})

    assert result.status is RunStatus.COMPLETED
    assert result.executed_steps == ("task1", "task3")
    assert result.outputs == {"stored": False}  # task3 got the failed fetch's (empty) data


async def test_unknown_tasks_and_targets_are_reported_together(executor: FlowExecutor) -> None:
    graph = json.loads(SAMPLE)
    graph["start_task"] = "task0"
    graph["conditions"][1]["target_task_success"] = "task9"
    graph["tasks"].append({"name": "task4"})

    with pytest.raises(DefinitionError) as caught:
        executor.load(json.dumps(graph))

    found = {problem.msg for problem in caught.value.problems}
    assert "unknown task 'task0'" in found
    assert "unknown task 'task9' (or `end`)" in found
    assert any("task4" in message for message in found)

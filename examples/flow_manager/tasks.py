"""The Flow Manager seed's example tasks: fetch, process, store.

A condition-graph task may ask for `data` (the outputs of the task that routed to it) and
`inputs` (the run's inputs); it returns its outputs as a dict.

    python -m app run examples/flow_manager/sample_flow.json --tasks examples/flow_manager/tasks.py
"""

from __future__ import annotations

from typing import Any

from app.tasks import TaskError, TaskRegistry

registry = TaskRegistry()


@registry.register("task1", description="Fetch data")
async def fetch(inputs: dict[str, Any]) -> dict[str, Any]:
    if inputs.get("source_down"):
        raise TaskError("the data source is unavailable")
    return {"records": list(inputs.get("records", [1, 2, 3]))}


@registry.register("task2", description="Process data")
async def process(data: dict[str, Any]) -> dict[str, Any]:
    records = data.get("records", [])
    if not all(isinstance(record, int | float) for record in records):
        raise TaskError("records must be numbers")
    return {"records": [record * 2 for record in records], "total": sum(records) * 2}


@registry.register("task3", description="Store data")
async def store(data: dict[str, Any]) -> dict[str, Any]:
    return {"stored": "records" in data}

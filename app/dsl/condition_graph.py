"""The Flow Manager condition-graph format, translated into the FlowLang model.

```json
{"id": "flow123", "name": "...", "start_task": "task1",
 "tasks": [{"name": "task1", "description": "...", "task": "optional registered name",
            "inputs": {...}}],
 "conditions": [{"name": "...", "source_task": "task1", "outcome": "success",
                 "target_task_success": "task2", "target_task_failure": "end"}]}
```
A condition routes to `target_task_success` when the source's outcome matches `outcome`, else to
`target_task_failure`; `end` ends the run. Each task becomes a step that runs when a route to it
fires (an `if:` over its sources' statuses) and whose failures never fail the run by themselves
(`on_error: continue`): the run's result is decided by the last executed task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from app.dsl.catalog import TaskCatalog
from app.dsl.expressions import Budget, Expression, Reference, Scope
from app.dsl.fields import FieldReader
from app.dsl.graph import build_graph
from app.dsl.models import ErrorAction, FlowDefinition, FlowKind, Mode, Step
from app.dsl.sql_text import check_sql_text
from app.dsl.templates import Template
from app.errors import Loc

END = "end"
FLOW_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
GRAPH_FIELDS = frozenset({"id", "name", "description", "start_task", "tasks", "conditions"})
TASK_FIELDS = frozenset({"name", "description", "task", "inputs"})
CONDITION_FIELDS = frozenset(
    {"name", "description", "source_task", "outcome", "target_task_success", "target_task_failure"}
)
OFFERED = frozenset({"data", "inputs"})  # what a condition-graph task function may ask for
_STATUS_OF_OUTCOME = {"success": "completed", "failure": "failed"}


def is_condition_graph(data: Any) -> bool:
    return isinstance(data, Mapping) and "start_task" in data and "flow" not in data


def translate_condition_graph(
    data: Mapping[str, Any], read: FieldReader, catalog: TaskCatalog
) -> FlowDefinition | None:
    read.only_keys(data, GRAPH_FIELDS, ())
    flow_id = read.string(data.get("id"), ("id",), FLOW_ID) if "id" in data else None
    if "id" not in data:
        read.problems.add((), "a condition graph needs an `id`: its flow name", "missing")
    tasks = _tasks(data.get("tasks"), read)
    start = read.string(data.get("start_task"), ("start_task",))
    if start is not None and start not in tasks:
        read.problems.add(("start_task",), f"unknown task {start!r}", "unknown_step")
    routes = _routes(data.get("conditions", []), read, tasks)
    steps = [
        _step(name, fields, loc, routes.get(name, []), name == start, read, catalog)
        for name, (fields, loc) in tasks.items()
    ]
    graph = build_graph(steps, Mode.DAG, {}, False, {}, [], catalog, read.problems)
    description = data.get("name") or data.get("description") or ""
    return FlowDefinition(
        name=flow_id or "",
        steps=tuple(steps),
        dependencies=graph.dependencies,
        description=str(description),
        mode=Mode.DAG,
        kind=FlowKind.CONDITION_GRAPH,
        strict_inputs=False,
    )


def _tasks(raw: Any, read: FieldReader) -> dict[str, tuple[Mapping[str, Any], Loc]]:
    if not isinstance(raw, list) or not raw:
        read.problems.add(("tasks",), "must be a non-empty list of tasks", "type_error")
        return {}
    tasks: dict[str, tuple[Mapping[str, Any], Loc]] = {}
    for index, item in enumerate(raw):
        loc: Loc = ("tasks", index)
        fields = read.mapping(item, loc)
        if fields is None:
            continue
        read.only_keys(fields, TASK_FIELDS, loc)
        name = read.identifier(fields.get("name"), (*loc, "name"))
        if name is None:
            continue
        if name in tasks or name == END:
            read.problems.add(
                (*loc, "name"), f"duplicate or reserved task name {name!r}", "duplicate"
            )
            continue
        tasks[name] = (fields, loc)
    return tasks


def _routes(
    raw: Any, read: FieldReader, tasks: Mapping[str, Any]
) -> dict[str, list[tuple[str, str]]]:
    """target task -> [(source task, source status that routes to it)]."""
    if not isinstance(raw, list):
        read.problems.add(("conditions",), "must be a list of conditions", "type_error")
        return {}
    routes: dict[str, list[tuple[str, str]]] = {}
    for index, item in enumerate(raw):
        loc: Loc = ("conditions", index)
        fields = read.mapping(item, loc)
        if fields is None:
            continue
        read.only_keys(fields, CONDITION_FIELDS, loc)
        source = read.string(fields.get("source_task"), (*loc, "source_task"))
        if source is not None and source not in tasks:
            read.problems.add((*loc, "source_task"), f"unknown task {source!r}", "unknown_step")
            source = None
        outcome = read.choice(
            fields.get("outcome", "success"), (*loc, "outcome"), _STATUS_OF_OUTCOME
        )
        matched = _STATUS_OF_OUTCOME[outcome or "success"]
        unmatched = "failed" if matched == "completed" else "completed"
        for key, status in (("target_task_success", matched), ("target_task_failure", unmatched)):
            target = read.string(fields.get(key, END), (*loc, key))
            if target is None or target == END:
                continue
            if target not in tasks:
                read.problems.add(
                    (*loc, key), f"unknown task {target!r} (or `end`)", "unknown_step"
                )
            elif source is not None:
                routes.setdefault(target, []).append((source, status))
    return routes


def _step(
    name: str,
    fields: Mapping[str, Any],
    loc: Loc,
    routes: list[tuple[str, str]],
    is_start: bool,
    read: FieldReader,
    catalog: TaskCatalog,
) -> Step:
    task = read.string(fields.get("task", name), (*loc, "task")) or name
    spec = catalog.get(task)
    arguments: dict[str, Template] = {}
    raw_inputs = read.mapping(fields.get("inputs", {}), (*loc, "inputs")) or {}
    for key, value in raw_inputs.items():
        template = read.template(value, (*loc, "inputs", key))
        if template is not None:
            arguments[key] = template
    if spec is None:
        known = ", ".join(sorted(catalog)) or "none"
        read.problems.add(
            loc, f"no task is registered under the name {task!r} (known: {known})", "unknown_task"
        )
    else:
        for missing in sorted(spec.required_params - set(arguments) - OFFERED):
            read.problems.add(loc, f"task {task!r} needs the input {missing!r}", "missing")
        check_sql_text(raw_inputs, spec.sql_text, (*loc, "inputs"), read.problems)
    condition = None if is_start else _routed(routes)
    sources = tuple(dict.fromkeys(source for source, _ in routes))
    return Step(
        id=name,
        task=task,
        arguments=arguments,
        condition=condition,
        depends_on=sources,
        on_error=ErrorAction.CONTINUE,
        data_from=sources,
        loc=loc,
        arguments_loc=(*loc, "inputs"),
    )


def _routed(routes: list[tuple[str, str]]) -> Expression:
    """`source.status == 'completed' or ...` over the routes into a task: whether one fired.

    Built directly rather than compiled from that text: a task may have any number of routes,
    and an expression's text is limited in length (a graph with 200 routes into one task was
    refused with an error no definition problem explained)."""
    fired = tuple(routes)

    def evaluate(scope: Scope, budget: Budget) -> bool:
        return any(scope[source]["status"] == status for source, status in fired)

    text = " or ".join(f"{source}.status == '{status}'" for source, status in fired)
    references = frozenset(Reference(source, ("status",)) for source, _ in fired)
    return Expression(text or "False", evaluate, references, budgeted=False)

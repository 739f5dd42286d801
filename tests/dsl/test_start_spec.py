"""What starting a run from SQL needs (`start_spec`): every step in order, the declared inputs,
and the concurrency key as text and plain input reads, or marked as computed."""

from __future__ import annotations

import json

import pytest

from app.connections.manager import ConnectionManager
from app.dsl.definitions import parse_definition
from app.dsl.models import FlowDefinition
from app.dsl.start_spec import start_spec
from app.tasks.builtins import builtin_registry

CATALOG = builtin_registry().catalog()


def parse(source: str) -> FlowDefinition:
    return parse_definition(source, CATALOG, ConnectionManager().types)


def test_steps_handlers_included_and_inputs_are_described_in_order() -> None:
    definition = parse(
        """\
flow: Described
inputs:
  n: {type: integer, required: true}
  label: {type: string, default: none}
  extra: any
steps:
  - fail:
      id: first
      message: no
      on_error:
        - log: {id: handler, message: handled}
  - set: {id: last, values: {n: "${inputs.n}"}}
"""
    )

    spec = start_spec(definition)

    assert spec == {
        "format": 1,
        "steps": ["first", "handler", "last"],
        "strict_inputs": True,
        "inputs": [
            {
                "name": "n",
                "type": "integer",
                "required": True,
                "has_default": False,
                "default": None,
            },
            {
                "name": "label",
                "type": "string",
                "required": False,
                "has_default": True,
                "default": "none",
            },
            {
                "name": "extra",
                "type": "any",
                "required": False,
                "has_default": False,
                "default": None,
            },
        ],
        "concurrency": None,
    }
    assert json.loads(json.dumps(spec)) == spec  # plain JSON, as the column keeps it


@pytest.mark.parametrize(
    ("key", "parts", "computed"),
    [
        (None, None, False),
        ('"fixed"', ["fixed"], False),
        ('"${inputs.tenant}"', [["tenant"]], False),
        ('"t-${inputs.tenant}/${inputs.size}"', ["t-", ["tenant"], "/", ["size"]], False),
        ('"${inputs.tenant[0]}"', [["tenant", 0]], False),
        ('"${lower(inputs.tenant)}"', None, True),
        ('"${inputs.size + 1}"', None, True),
    ],
)
def test_a_concurrency_key_is_text_and_input_reads_or_marked_computed(
    key: str | None, parts: list[object] | None, computed: bool
) -> None:
    written = "" if key is None else f", key: {key}"
    definition = parse(
        "flow: Keyed\ninputs:\n  tenant: string\n  size: integer\n"
        f"concurrency: {{limit: 3{written}}}\nsteps:\n  - log: {{id: hi, message: hi}}\n"
    )

    described = start_spec(definition)["concurrency"]

    assert described["limit"] == 3
    assert (described["key"], described["computed"]) == (parts, computed)
    if key is not None:
        assert described["written"] == json.loads(key)


def test_a_condition_graph_keeps_undeclared_inputs() -> None:
    graph = {
        "id": "Graph",
        "start_task": "a",
        "tasks": [{"name": "a", "task": "log", "inputs": {"message": "hi"}}],
        "conditions": [],
    }

    spec = start_spec(parse(json.dumps(graph)))

    assert (spec["strict_inputs"], spec["inputs"], spec["steps"]) == (False, [], ["a"])

"""What starting a run of a flow version needs, as plain JSON that SQL can read.

PostgreSQL's `flow_manager.start_run` (docs/architecture.md, "Starting runs from SQL") starts
runs inside the caller's transaction, without the service: it reads this description, stored
with each version (`flow_definitions.start_spec`), to check and complete the inputs as
`app.dsl.inputs.validate_inputs` does, to create one pending task per step in order, and to
render the run's concurrency key. What SQL cannot render the same way as the service (a
concurrency key that computes) is described as such, so the function refuses it clearly
instead of guessing.

    {"format": 1,
     "steps": ["fetch", "transform"],                 # every step, handlers included, in order
     "strict_inputs": true,                           # undeclared inputs are refused
     "inputs": [{"name": "n", "type": "integer", "required": true,
                 "has_default": false, "default": null}],
     "concurrency": null | {"limit": 2,
                            "key": null | ["tenant-", ["tenant"]],   # text, and input paths
                            "written": "tenant-${inputs.tenant}",
                            "computed": false}}       # true: SQL cannot render the key
"""

from __future__ import annotations

from typing import Any

from app.dsl.models import Concurrency, FlowDefinition
from app.dsl.templates import text_parts, written_text

START_SPEC_FORMAT = 1  # the function refuses a description of a format it does not know


def start_spec(definition: FlowDefinition) -> dict[str, Any]:
    """The description of `definition` that `flow_manager.start_run` reads."""
    return {
        "format": START_SPEC_FORMAT,
        "steps": [step.id for step in definition.steps],
        "strict_inputs": definition.strict_inputs,
        "inputs": [
            {
                "name": spec.name,
                "type": spec.type.value,
                "required": spec.required,
                "has_default": spec.has_default,
                "default": spec.default,
            }
            for spec in definition.inputs.values()
        ],
        "concurrency": _concurrency(definition.concurrency),
    }


def _concurrency(limit: Concurrency | None) -> dict[str, Any] | None:
    if limit is None:
        return None
    if limit.key is None:
        return {"limit": limit.limit, "key": None, "written": None, "computed": False}
    parts = text_parts(limit.key)
    return {
        "limit": limit.limit,
        # A path as a list: JSON has no tuples.
        "key": None if parts is None else [p if isinstance(p, str) else list(p) for p in parts],
        "written": written_text(limit.key),
        "computed": parts is None,
    }

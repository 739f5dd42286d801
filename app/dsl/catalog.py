"""What the flow language needs to know about a task type to validate a step that uses it.

The task registry (`app.tasks`) describes each registered task with a `TaskSpec`; validation
receives them as a plain mapping, so the flow language never imports the task layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RESERVED_OUTPUTS = frozenset({"status", "error"})


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str = ""
    builtin: bool = False
    required_params: frozenset[str] = frozenset()
    optional_params: frozenset[str] = frozenset()
    accepts_any_params: bool = False  # a custom function taking **kwargs
    outputs: frozenset[str] | None = None  # None: only known when the task runs
    outputs_from_param: str | None = None  # the outputs are this mapping param's keys (`set`)
    connection_types: frozenset[str] = frozenset()  # empty: the task takes no connection
    connection_required: bool = False
    # Where the parameters hold SQL text, which `${...}` may not make (`app/dsl/sql_text.py`):
    # a parameter (`query`) or a path into one, `[]` meaning each element (`queries[].query`).
    sql_text: frozenset[str] = frozenset()
    # The engine waits for it (`sleep`, `wait_for`): its function answers what to wait for.
    waits: bool = False
    # No effect outside the run (`set`, `log`, `fail`): running it again is invisible, so the
    # store may commit its finish with the run's next transition (`RunStore.committed`).
    pure: bool = False

    @property
    def params(self) -> frozenset[str]:
        return self.required_params | self.optional_params


TaskCatalog = Mapping[str, TaskSpec]

"""The typed model of a flow definition: what the loader and validator produce, what runs.

Every value that may hold `${...}` is already compiled (`Template` / `Expression`), so the
engine never parses text while running. The models are frozen: one definition is shared by
every run of its version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.domain.concurrency import MAX_CONCURRENCY_KEY_LENGTH
from app.domain.retention import Retention
from app.domain.schedules import ScheduleSpec
from app.dsl.expressions import Expression, format_value
from app.dsl.templates import Template
from app.errors import (
    ExpressionEvaluationError,
    InputValidationError,
    Loc,
    Problem,
    format_loc,
)


class Mode(StrEnum):
    SEQUENTIAL = "sequential"
    DAG = "dag"


class InputType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"
    ANY = "any"


class ErrorAction(StrEnum):
    FAIL = "fail"  # the run fails
    CONTINUE = "continue"  # the step stays failed, the run goes on
    HANDLE = "handle"  # handler steps run, then the run goes on


class FlowKind(StrEnum):
    FLOW = "flow"  # the FlowLang format
    CONDITION_GRAPH = "condition_graph"  # the Flow Manager format (`start_task`, `conditions`)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    delay: float = 1.0  # seconds before the second attempt
    backoff: float = 2.0  # factor applied to the delay after each further failure
    max_delay: float = 300.0
    jitter: bool = False
    retry_on: frozenset[str] = frozenset()  # error type names; empty: every retryable error


@dataclass(frozen=True)
class ConnectionSpec:
    name: str
    type: str
    params: Mapping[str, Template]  # may reference `env`
    loc: Loc = ()


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: InputType = InputType.ANY
    required: bool = False
    default: Any = None
    has_default: bool = False
    description: str = ""
    loc: Loc = ()


@dataclass(frozen=True)
class FlowOutput:
    name: str
    value: Template
    loc: Loc = ()


@dataclass(frozen=True)
class ForEach:
    items: Template
    variable: str = "item"
    max_concurrency: int = 10


@dataclass(frozen=True)
class Step:
    id: str
    task: str  # the task type: a built-in name or a registered custom task
    arguments: Mapping[str, Template] = field(default_factory=dict)
    connection: str | None = None
    condition: Expression | None = None
    depends_on: tuple[str, ...] = ()
    outputs: tuple[str, ...] | None = None  # declared outputs; None: whatever the task returns
    retry: RetryPolicy = RetryPolicy()
    timeout: float | None = None
    on_error: ErrorAction = ErrorAction.FAIL
    for_each: ForEach | None = None
    handler_of: str | None = None  # set on the handler steps of another step's `on_error`
    # Condition graphs: the steps whose outputs this step is offered as `data`.
    data_from: tuple[str, ...] = ()
    loc: Loc = ()  # of the step's body
    arguments_loc: Loc = ()  # of its parameters (built-ins) or `inputs` (custom tasks)


@dataclass(frozen=True)
class Concurrency:
    """`concurrency: {limit, key}`: at most `limit` runs of one key run at once; `key` is a
    template over `inputs` (None: the flow's default key, the flow itself)."""

    limit: int
    key: Template | None = None
    loc: Loc = ("concurrency",)

    def key_for(self, inputs: Mapping[str, Any]) -> str | None:
        """The key of a run with these (validated) inputs, as text; None without `key`.

        Raises `InputValidationError` when it cannot be rendered, or renders to more than
        MAX_CONCURRENCY_KEY_LENGTH characters."""
        if self.key is None:
            return None
        try:
            value = self.key.render({"inputs": inputs})
        except ExpressionEvaluationError as error:
            raise _key_error(self.loc, f"cannot be rendered: {error.message}") from error
        text = value if isinstance(value, str) else format_value(value)
        if len(text) > MAX_CONCURRENCY_KEY_LENGTH:
            raise _key_error(
                self.loc,
                f"renders to {len(text):,} characters; at most {MAX_CONCURRENCY_KEY_LENGTH} "
                "are allowed",
            )
        return text


def _key_error(loc: Loc, message: str) -> InputValidationError:
    where = format_loc((*loc, "key"))
    return InputValidationError([Problem((), f"the flow's {where} {message}", "concurrency_key")])


@dataclass(frozen=True)
class FlowDefinition:
    name: str
    steps: tuple[Step, ...]  # every step, handlers included, in definition order
    dependencies: Mapping[str, frozenset[str]]  # step id -> the step ids it waits for
    description: str = ""
    mode: Mode = Mode.SEQUENTIAL
    kind: FlowKind = FlowKind.FLOW
    connections: Mapping[str, ConnectionSpec] = field(default_factory=dict)
    inputs: Mapping[str, InputSpec] = field(default_factory=dict)
    strict_inputs: bool = True  # undeclared inputs are refused
    outputs: tuple[FlowOutput, ...] = ()
    handlers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # step -> handler ids
    retention: Retention = field(default_factory=Retention)  # kept runs (the pruner reads it)
    schedules: tuple[ScheduleSpec, ...] = ()  # `schedules:` (registering replaces the last's)
    concurrency: Concurrency | None = None  # how many of its runs may run at once

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

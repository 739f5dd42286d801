"""Parsing the `steps:` of a FlowLang definition into `Step` models.

A step is spelled `- <type>: {id: ..., <params>, <common fields>}` or
`- task: <Name>` with `id`, `inputs` and common fields beside it. Handler steps listed under
`on_error` are parsed here too and returned after the step they handle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.dsl.catalog import RESERVED_OUTPUTS, TaskCatalog, TaskSpec
from app.dsl.fields import FLOW_NAME, FieldReader
from app.dsl.limits import DefinitionLimits
from app.dsl.models import ConnectionSpec, ErrorAction, ForEach, RetryPolicy, Step
from app.dsl.sql_text import check_sql_text
from app.dsl.templates import Template
from app.errors import Loc, format_loc

COMMON_FIELDS = frozenset(
    {
        "id",
        "description",
        "if",
        "depends_on",
        "outputs",
        "retry",
        "timeout",
        "on_error",
        "for_each",
        "as",
        "max_concurrency",
        "connection",
    }
)
CUSTOM_FIELDS = COMMON_FIELDS | {"task", "inputs"}
# `- flow: Name` with `inputs` and `version` beside it: a child run (DESIGN.md section 9).
CHILD_FIELDS = COMMON_FIELDS | {"flow", "inputs", "version"}
CHILD_PARAMS = ("flow", "inputs", "version")
RETRY_FIELDS = frozenset({"max_attempts", "delay", "backoff", "max_delay", "jitter", "retry_on"})
MAX_ATTEMPTS = 100
MAX_CONCURRENCY = 1000
_DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class StepDefaults:
    """The flow's `defaults:`, applied to every step that does not say otherwise: a step's
    `retry` fields replace these one by one."""

    retry: RetryPolicy = _DEFAULT_RETRY
    timeout: float | None = None


class StepParser:
    def __init__(
        self,
        reader: FieldReader,
        catalog: TaskCatalog,
        connections: Mapping[str, ConnectionSpec],
        defaults: StepDefaults,
        limits: DefinitionLimits,
    ) -> None:
        self.read = reader
        self.problems = reader.problems
        self.catalog = catalog
        self.connections = connections
        self.defaults = defaults
        self.limits = limits

    def parse_list(self, raw: Any, loc: Loc, handler_of: str | None = None) -> list[Step]:
        if not isinstance(raw, list) or not raw:
            self.problems.add(loc, "must be a non-empty list of steps", "type_error")
            return []
        steps: list[Step] = []
        for index, raw_step in enumerate(raw):
            steps.extend(self.parse(raw_step, (*loc, index), handler_of))
        return steps

    def parse(self, raw: Any, loc: Loc, handler_of: str | None) -> list[Step]:
        """The step at `loc` followed by its handler steps (if any)."""
        spelled = self._spelling(raw, loc)
        if spelled is None:
            return []
        task_name, body, body_loc, arguments, arguments_loc = spelled
        step_id = None
        if "id" in body:
            step_id = self.read.identifier(body["id"], (*body_loc, "id"))
        else:
            self.problems.add(body_loc, "a step needs an `id`", "missing")
        step_id = step_id or f"<{format_loc(loc)}>"  # keeps parsing; the problem is recorded
        spec = self._task_spec(task_name, body_loc)
        compiled = self._arguments(arguments, arguments_loc, spec)
        on_error, handler_steps = self._on_error(
            body.get("on_error"), (*body_loc, "on_error"), step_id
        )
        step = Step(
            id=step_id,
            task=task_name,
            arguments=compiled,
            connection=self._connection(body.get("connection"), (*body_loc, "connection"), spec),
            condition=self.read.condition(body["if"], (*body_loc, "if")) if "if" in body else None,
            depends_on=tuple(self._list(body, "depends_on", body_loc, identifiers=True)),
            outputs=self._outputs(body, body_loc, spec)
            or self._outputs_from_param(arguments, arguments_loc, spec),
            retry=self._retry(body.get("retry"), (*body_loc, "retry")),
            timeout=self._timeout(body, body_loc, spec),
            on_error=on_error,
            for_each=self._for_each(body, body_loc),
            handler_of=handler_of,
            loc=body_loc,
            arguments_loc=arguments_loc,
        )
        if spec is not None and spec.waits and step.for_each is not None:
            self.problems.add(
                (*body_loc, "for_each"),
                f"{spec.name} waits for the whole run: it cannot fan out",
                "not_allowed",
            )
        return [step, *handler_steps]

    def _spelling(
        self, raw: Any, loc: Loc
    ) -> tuple[str, Mapping[str, Any], Loc, Mapping[str, Any], Loc] | None:
        """(task type, step body, body loc, arguments, arguments loc) of either spelling."""
        mapping = self.read.mapping(raw, loc, "a step: `- <type>: {...}` or `- task: <Name>`")
        if mapping is None:
            return None
        if "flow" in mapping and "task" not in mapping and isinstance(mapping["flow"], str):
            self.read.only_keys(mapping, CHILD_FIELDS, loc)
            if not FLOW_NAME.fullmatch(mapping["flow"]):
                self.problems.add((*loc, "flow"), f"{mapping['flow']!r} is no flow name", "name")
            child = {name: mapping[name] for name in CHILD_PARAMS if name in mapping}
            return ("flow", mapping, loc, child, loc)
        if "task" in mapping:
            task_name = self.read.string(mapping["task"], (*loc, "task"))
            self.read.only_keys(mapping, CUSTOM_FIELDS, loc)
            inputs = mapping.get("inputs", {})
            arguments = self.read.mapping(inputs, (*loc, "inputs")) or {}
            return (task_name or "<unknown>", mapping, loc, arguments, (*loc, "inputs"))
        if len(mapping) != 1:
            self.problems.add(
                loc,
                "a step must be a single `<type>: {...}` entry or have a `task:` field "
                f"(found keys: {', '.join(mapping)})",
                "step_shape",
            )
            return None
        ((task_name, body),) = mapping.items()
        body_loc = (*loc, task_name)
        body_mapping = self.read.mapping(body, body_loc)
        if body_mapping is None:
            return None
        arguments = {key: value for key, value in body_mapping.items() if key not in COMMON_FIELDS}
        return (task_name, body_mapping, body_loc, arguments, body_loc)

    def _task_spec(self, task_name: str, loc: Loc) -> TaskSpec | None:
        spec = self.catalog.get(task_name)
        if spec is None:
            known = ", ".join(sorted(self.catalog)) or "none"
            self.problems.add(
                loc, f"unknown task type {task_name!r} (known: {known})", "unknown_task"
            )
        return spec

    def _arguments(
        self, arguments: Mapping[str, Any], loc: Loc, spec: TaskSpec | None
    ) -> dict[str, Template]:
        if spec is not None:
            for missing in sorted(spec.required_params - set(arguments)):
                self.problems.add(loc, f"{spec.name} needs the parameter {missing!r}", "missing")
            if not spec.accepts_any_params:
                for name in arguments:
                    if name not in spec.params:
                        known = ", ".join(sorted(spec.params)) or "none"
                        self.problems.add(
                            (*loc, name),
                            f"{spec.name} has no parameter {name!r} (parameters: {known})",
                            "extra",
                        )
            check_sql_text(arguments, spec.sql_text, loc, self.problems)
        compiled: dict[str, Template] = {}
        for name, value in arguments.items():
            template = self.read.template(value, (*loc, name))
            if template is not None:
                compiled[name] = template
        return compiled

    def _connection(self, raw: Any, loc: Loc, spec: TaskSpec | None) -> str | None:
        if raw is None:
            if spec is not None and spec.connection_required:
                kinds = " or ".join(sorted(spec.connection_types))
                self.problems.add(
                    loc[:-1], f"{spec.name} needs a `connection` of type {kinds}", "missing"
                )
            return None
        name = self.read.string(raw, loc)
        if name is None:
            return None
        declared = self.connections.get(name)
        if declared is None:
            known = ", ".join(sorted(self.connections)) or "none declared"
            self.problems.add(loc, f"unknown connection {name!r} (connections: {known})", "unknown")
        elif spec is not None and spec.builtin and declared.type not in spec.connection_types:
            kinds = " or ".join(sorted(spec.connection_types)) or "no connection"
            self.problems.add(
                loc, f"{spec.name} needs {kinds}, but {name!r} is of type {declared.type}", "type"
            )
        return name

    def _list(self, body: Mapping[str, Any], key: str, loc: Loc, *, identifiers: bool) -> list[str]:
        if key not in body:
            return []
        return self.read.string_list(body[key], (*loc, key), identifiers=identifiers) or []

    def _outputs(
        self, body: Mapping[str, Any], loc: Loc, spec: TaskSpec | None
    ) -> tuple[str, ...] | None:
        if "outputs" not in body:
            return None
        names = self._list(body, "outputs", loc, identifiers=True)
        for index, name in enumerate(names):
            if name in RESERVED_OUTPUTS:
                self.problems.add(
                    (*loc, "outputs", index), f"{name!r} is reserved for every step", "reserved"
                )
            elif spec is not None and spec.outputs is not None and name not in spec.outputs:
                known = ", ".join(sorted(spec.outputs)) or "none"
                self.problems.add(
                    (*loc, "outputs", index),
                    f"{spec.name} has no output {name!r} (outputs: {known})",
                    "unknown_output",
                )
        return tuple(names)

    def _outputs_from_param(
        self, arguments: Mapping[str, Any], loc: Loc, spec: TaskSpec | None
    ) -> tuple[str, ...] | None:
        """Outputs named by a mapping parameter's keys (`set: {values: {a: 1}}` outputs `a`)."""
        if spec is None or spec.outputs_from_param is None:
            return None
        value = arguments.get(spec.outputs_from_param)
        if not isinstance(value, Mapping):
            return None
        for key in value:
            if key in RESERVED_OUTPUTS:
                where = (*loc, spec.outputs_from_param, key)
                self.problems.add(where, f"{key!r} is reserved for every step", "reserved")
        return tuple(str(key) for key in value)

    def _retry(self, raw: Any, loc: Loc) -> RetryPolicy:
        """The defaults' policy with the step's own fields in place (checked at the step;
        the defaults' fields were checked once, where they are written)."""
        if raw is None:
            return self.defaults.retry
        mapping = self.read.mapping(raw, loc)
        if mapping is None:
            return self.defaults.retry
        return parse_retry(self.read, mapping, loc, self.limits, self.defaults.retry)

    def _timeout(self, body: Mapping[str, Any], loc: Loc, spec: TaskSpec | None) -> float | None:
        if spec is not None and spec.waits:  # how long it waits: no attempt, no default
            if "timeout" not in body:
                return None
            limit = self.limits.max_durable_wait
            raw = body["timeout"]
            return self.read.duration(
                raw, (*loc, "timeout"), limit, "MAX_DURABLE_WAIT_SECONDS", strict=True
            )
        if "timeout" not in body:
            return self.defaults.timeout
        return parse_timeout(self.read, body["timeout"], (*loc, "timeout"), self.limits)

    def _on_error(self, raw: Any, loc: Loc, step_id: str) -> tuple[ErrorAction, list[Step]]:
        if raw is None:
            return ErrorAction.FAIL, []
        if isinstance(raw, list):
            return ErrorAction.HANDLE, self.parse_list(raw, loc, handler_of=step_id)
        action = self.read.choice(raw, loc, {"fail", "continue"})
        return ErrorAction(action or "fail"), []

    def _for_each(self, body: Mapping[str, Any], loc: Loc) -> ForEach | None:
        if "for_each" not in body:
            for key in ("as", "max_concurrency"):
                if key in body:
                    self.problems.add((*loc, key), f"`{key}` needs `for_each`", "missing")
            return None
        items = self.read.template(body["for_each"], (*loc, "for_each"))
        variable = self.read.identifier(body.get("as", "item"), (*loc, "as")) or "item"
        concurrency = self.read.integer(
            body.get("max_concurrency", 10), (*loc, "max_concurrency"), minimum=1
        )
        if concurrency is not None and concurrency > MAX_CONCURRENCY:
            self.problems.add((*loc, "max_concurrency"), f"must be at most {MAX_CONCURRENCY}")
        if items is None:
            return None
        return ForEach(items, variable, min(concurrency or 10, MAX_CONCURRENCY))


def parse_timeout(read: FieldReader, raw: Any, loc: Loc, limits: DefinitionLimits) -> float | None:
    """A `timeout:` in seconds, greater than 0 and at most MAX_STEP_TIMEOUT_SECONDS."""
    return read.duration(raw, loc, limits.max_step_timeout, "MAX_STEP_TIMEOUT_SECONDS", strict=True)


def parse_retry(
    read: FieldReader,
    raw: Mapping[str, Any],
    loc: Loc,
    limits: DefinitionLimits,
    base: RetryPolicy = _DEFAULT_RETRY,
) -> RetryPolicy:
    """A retry policy from the fields at `loc`; the fields it lacks (and bad ones, whose
    problems are recorded) keep `base`'s values."""
    read.only_keys(raw, RETRY_FIELDS, loc)

    def field_loc(key: str) -> Loc:
        return (*loc, key)

    max_attempts = base.max_attempts
    if "max_attempts" in raw:
        max_attempts = read.integer(raw["max_attempts"], field_loc("max_attempts"), 1) or 1
        if max_attempts > MAX_ATTEMPTS:
            read.problems.add(field_loc("max_attempts"), f"must be at most {MAX_ATTEMPTS}")

    def delay(key: str, fallback: float) -> float:
        if key not in raw:
            return fallback
        limit = limits.max_retry_delay
        value = read.duration(raw[key], field_loc(key), limit, "MAX_RETRY_DELAY_SECONDS")
        return fallback if value is None else value

    backoff = base.backoff
    if "backoff" in raw:
        backoff = read.number(raw["backoff"], field_loc("backoff"), minimum=1) or base.backoff
    jitter = base.jitter
    if "jitter" in raw:
        jitter = bool(read.boolean(raw["jitter"], field_loc("jitter")))
    retry_on = base.retry_on
    if "retry_on" in raw:
        retry_on = frozenset(read.string_list(raw["retry_on"], field_loc("retry_on")) or [])
    policy = RetryPolicy(
        max_attempts=min(max_attempts, MAX_ATTEMPTS),
        delay=delay("delay", base.delay),
        backoff=backoff,
        max_delay=delay("max_delay", base.max_delay),
        jitter=jitter,
        retry_on=retry_on,
    )
    return base if policy == base else policy  # most steps share one


def count_steps(raw: Any) -> int:
    """How many steps a raw `steps:` list declares, the handlers under `on_error:` included,
    counted on the loaded data before anything is parsed (every shape is tolerated)."""
    count = 0
    pending = [raw]
    while pending:
        items = pending.pop()
        if not isinstance(items, list):
            continue
        count += len(items)
        for item in items:
            if not isinstance(item, Mapping):
                continue
            # `- task: X` carries its fields beside it; `- <type>: {...}` inside its body.
            body = item if "task" in item or len(item) != 1 else next(iter(item.values()))
            if isinstance(body, Mapping):
                pending.append(body.get("on_error"))
    return count

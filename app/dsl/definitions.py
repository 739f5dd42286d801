"""From source text to a validated `FlowDefinition`: the flow language's front door.

`parse_definition` accepts both formats: FlowLang (`flow:`, `steps:`) and the Flow Manager
condition graph (`start_task`, `tasks`, `conditions`). Every problem is reported at once, as a
`DefinitionError` whose problems point into the source (with line and column where known).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

from app.domain.concurrency import MAX_CONCURRENCY_LIMIT
from app.domain.retention import (
    MAX_RETENTION_DAYS,
    MAX_RETENTION_RUNS,
    RETENTION_FIELDS,
    Retention,
)
from app.domain.schedules import (
    DEFAULT_TIMEZONE,
    MAX_DECLARED_SCHEDULES,
    SCHEDULE_FIELDS,
    Cron,
    CronError,
    Overlap,
    ScheduleSpec,
)
from app.dsl.catalog import TaskCatalog
from app.dsl.condition_graph import is_condition_graph, translate_condition_graph
from app.dsl.fields import FLOW_NAME, FieldReader
from app.dsl.graph import build_graph
from app.dsl.inputs import coerce_input, validate_inputs
from app.dsl.limits import DEFAULT_LIMITS, DefinitionLimits
from app.dsl.loading import Document, load_document
from app.dsl.models import (
    Concurrency,
    ConnectionSpec,
    FlowDefinition,
    FlowOutput,
    InputSpec,
    InputType,
    Mode,
)
from app.dsl.problems import ProblemCollector
from app.dsl.steps import StepDefaults, StepParser, count_steps, parse_retry, parse_timeout
from app.dsl.templates import Template
from app.errors import InputValidationError, Loc

TOP_LEVEL_FIELDS = frozenset(
    {
        "flow",
        "description",
        "mode",
        "connections",
        "inputs",
        "defaults",
        "steps",
        "outputs",
        "retention",
        "schedules",
        "concurrency",
    }
)
CONCURRENCY_FIELDS = ("limit", "key")
INPUT_FIELDS = frozenset({"name", "type", "required", "default", "description"})
OUTPUT_FIELDS = frozenset({"name", "value", "description"})


def parse_definition(
    source: str | bytes,
    catalog: TaskCatalog,
    connection_types: Collection[str],
    *,
    format: Literal["yaml", "json"] | None = None,
    limits: DefinitionLimits = DEFAULT_LIMITS,
) -> FlowDefinition:
    """Load, parse and validate a definition; raise DefinitionError listing every problem."""
    document = load_document(source, format=format)
    return build_definition(document, catalog, connection_types, limits=limits)


def build_definition(
    document: Document,
    catalog: TaskCatalog,
    connection_types: Collection[str],
    *,
    limits: DefinitionLimits = DEFAULT_LIMITS,
) -> FlowDefinition:
    """Parse and validate a loaded definition within `limits`."""
    problems = ProblemCollector(document)
    _refuse_too_many_steps(document, problems, limits.max_steps)
    reader = FieldReader(problems)
    if is_condition_graph(document.data):
        definition = translate_condition_graph(document.data, reader, catalog)
    else:
        definition = _FlowParser(reader, catalog, connection_types, limits).parse(document.data)
    problems.raise_if_any()
    assert definition is not None  # a definition is only missing when problems were recorded
    return definition


def _refuse_too_many_steps(document: Document, problems: ProblemCollector, limit: int) -> None:
    """Refuse a definition with more than `limit` steps before parsing any of them: each step
    is work at registration and a task row per run."""
    if is_condition_graph(document.data):
        field, raw = "tasks", document.data.get("tasks")
        count = len(raw) if isinstance(raw, list) else 0
    else:
        field, raw = "steps", document.data.get("steps")
        count = count_steps(raw)
    if count > limit:
        problems.add(
            (field,),
            f"the flow has {count:,} steps (handlers included); at most {limit:,} are allowed "
            "(setting MAX_STEPS)",
            "too_many_steps",
        )
        problems.raise_if_any()


class _FlowParser:
    def __init__(
        self,
        reader: FieldReader,
        catalog: TaskCatalog,
        connection_types: Collection[str],
        limits: DefinitionLimits,
    ) -> None:
        self.read = reader
        self.problems = reader.problems
        self.catalog = catalog
        self.connection_types = connection_types
        self.limits = limits

    def parse(self, data: Any) -> FlowDefinition | None:
        top = self.read.mapping(data, (), "a mapping with `flow:` and `steps:`")
        if top is None:
            return None
        self.read.only_keys(top, TOP_LEVEL_FIELDS, ())
        name = self._name(top)
        mode = Mode(
            self.read.choice(top.get("mode", "sequential"), ("mode",), set(Mode)) or "sequential"
        )
        connections = self._connections(top.get("connections", {}))
        inputs = self._inputs(top.get("inputs", []))
        defaults = self._defaults(top.get("defaults", {}))
        retention = self._retention(top["retention"]) if "retention" in top else Retention()
        concurrency = (
            self._concurrency(top["concurrency"], inputs) if "concurrency" in top else None
        )
        if "steps" not in top:
            self.problems.add((), "a flow needs `steps:`", "missing")
        steps = StepParser(self.read, self.catalog, connections, defaults, self.limits).parse_list(
            top.get("steps", [None]), ("steps",)
        )
        outputs = self._outputs(top.get("outputs", []))
        schedules = self._schedules(top["schedules"], inputs) if "schedules" in top else ()
        graph = build_graph(
            steps, mode, inputs, True, connections, outputs, self.catalog, self.problems
        )
        description = top.get("description", "")
        if not isinstance(description, str):
            self.problems.add(("description",), "must be a string", "type_error")
            description = ""
        return FlowDefinition(
            name=name or "",
            steps=tuple(steps),
            dependencies=graph.dependencies,
            description=description,
            mode=mode,
            connections=connections,
            inputs=inputs,
            outputs=tuple(outputs),
            handlers=graph.handlers,
            retention=retention,
            schedules=schedules,
            concurrency=concurrency,
        )

    def _name(self, top: Mapping[str, Any]) -> str | None:
        if "flow" not in top:
            self.problems.add((), "a flow needs a name: `flow: <Name>`", "missing")
            return None
        return self.read.string(top["flow"], ("flow",), FLOW_NAME)

    def _connections(self, raw: Any) -> dict[str, ConnectionSpec]:
        mapping = self.read.mapping(raw, ("connections",)) or {}
        connections: dict[str, ConnectionSpec] = {}
        for name, body in mapping.items():
            loc: Loc = ("connections", name)
            self.read.identifier(name, loc)
            fields = self.read.mapping(body, loc)
            if fields is None:
                continue
            kind = self.read.choice(fields.get("type"), (*loc, "type"), self.connection_types)
            params: dict[str, Template] = {}
            for key, value in fields.items():
                template = self.read.template(value, (*loc, key)) if key != "type" else None
                if template is not None:
                    params[key] = template
            if kind is not None:
                connections[name] = ConnectionSpec(name, kind, params, loc)
        return connections

    def _inputs(self, raw: Any) -> dict[str, InputSpec]:
        entries: list[tuple[Any, Any, Loc]] = []
        if isinstance(raw, list):
            for index, item in enumerate(raw):
                fields = self.read.mapping(item, ("inputs", index))
                if fields is not None:
                    entries.append((fields.get("name"), fields, ("inputs", index)))
        elif isinstance(raw, Mapping):
            for name, fields in raw.items():
                # Mapping form: `{user_id: {type: integer}}` or the short `{user_id: integer}`.
                body = {"type": fields} if isinstance(fields, str) else fields
                if isinstance(body, Mapping):
                    body = {"name": name, **body}
                entries.append((name, body, ("inputs", name)))
        else:
            self.problems.add(("inputs",), "must be a list or a mapping of inputs", "type_error")
        inputs: dict[str, InputSpec] = {}
        for name, fields, loc in entries:
            spec = self._input(name, fields, loc)
            if spec is None:
                continue
            if spec.name in inputs:
                self.problems.add(loc, f"duplicate input {spec.name!r}", "duplicate")
            inputs[spec.name] = spec
        return inputs

    def _input(self, name: Any, fields: Any, loc: Loc) -> InputSpec | None:
        body = self.read.mapping(fields, loc)
        if body is None:
            return None
        self.read.only_keys(body, INPUT_FIELDS, loc)
        checked_name = self.read.identifier(name, (*loc, "name"))
        kind = InputType(
            self.read.choice(body.get("type", "any"), (*loc, "type"), set(InputType)) or "any"
        )
        required = self.read.boolean(body.get("required", False), (*loc, "required")) or False
        description = body.get("description", "")
        if checked_name is None:
            return None
        spec = InputSpec(checked_name, kind, required, None, False, str(description), loc)
        if "default" not in body:
            return spec
        try:
            default = coerce_input(spec, body["default"], (*loc, "default"))
        except InputValidationError as error:
            for problem in error.problems:
                self.problems.add(problem.loc, problem.msg, problem.type)
            return spec
        return InputSpec(checked_name, kind, required, default, True, str(description), loc)

    def _defaults(self, raw: Any) -> StepDefaults:
        body = self.read.mapping(raw, ("defaults",)) or {}
        self.read.only_keys(body, {"retry", "timeout"}, ("defaults",))
        retry = self.read.mapping(body.get("retry", {}), ("defaults", "retry")) or {}
        timeout = None
        if "timeout" in body:
            timeout = parse_timeout(
                self.read, body["timeout"], ("defaults", "timeout"), self.limits
            )
        return StepDefaults(
            parse_retry(self.read, retry, ("defaults", "retry"), self.limits), timeout
        )

    def _retention(self, raw: Any) -> Retention:
        """`retention: {days, max_runs}`: either or both, each a positive integer."""
        loc: Loc = ("retention",)
        body = self.read.mapping(raw, loc, "a mapping with `days` and/or `max_runs`")
        if body is None:
            return Retention()
        self.read.only_keys(body, RETENTION_FIELDS, loc)
        if not any(key in body for key in RETENTION_FIELDS):
            self.problems.add(loc, "needs `days`, `max_runs` or both", "missing")
        days = max_runs = None
        if "days" in body:
            days = self.read.integer(body["days"], (*loc, "days"), 1, MAX_RETENTION_DAYS)
        if "max_runs" in body:
            max_runs = self.read.integer(
                body["max_runs"], (*loc, "max_runs"), 1, MAX_RETENTION_RUNS
            )
        return Retention(days, max_runs)

    def _schedules(self, raw: Any, inputs: Mapping[str, InputSpec]) -> tuple[ScheduleSpec, ...]:
        """`schedules:` a list of `{cron, timezone?, inputs?, overlap?, enabled?}`, as
        POST /flows/{name}/schedules takes them; their inputs checked against the flow's."""
        if not isinstance(raw, list):
            self.problems.add(("schedules",), "must be a list of schedules", "type_error")
            return ()
        if len(raw) > MAX_DECLARED_SCHEDULES:
            self.problems.add(
                ("schedules",), f"at most {MAX_DECLARED_SCHEDULES} schedules", "value_error"
            )
            return ()
        specs = []
        for index, item in enumerate(raw):
            spec = self._schedule(item, ("schedules", index), inputs)
            if spec is not None:
                specs.append(spec)
        return tuple(specs)

    def _schedule(
        self, item: Any, loc: Loc, inputs: Mapping[str, InputSpec]
    ) -> ScheduleSpec | None:
        body = self.read.mapping(item, loc, "a mapping with `cron:`")
        if body is None:
            return None
        self.read.only_keys(body, SCHEDULE_FIELDS, loc)
        if "cron" not in body:
            self.problems.add(loc, "a schedule needs `cron:`", "missing")
            return None
        expression = self.read.string(body["cron"], (*loc, "cron"))
        timezone = self.read.string(body.get("timezone", DEFAULT_TIMEZONE), (*loc, "timezone"))
        overlap = self.read.choice(
            body.get("overlap", Overlap.SKIP), (*loc, "overlap"), set(Overlap)
        )
        enabled = self.read.boolean(body.get("enabled", True), (*loc, "enabled"))
        given = self.read.mapping(body.get("inputs", {}), (*loc, "inputs"))
        if expression is None or timezone is None or overlap is None or enabled is None:
            return None
        if given is None:
            return None
        try:
            Cron(expression, timezone).zone()
        except CronError as error:
            self.problems.add((*loc, "timezone"), str(error), "value_error")
            return None
        try:
            cron = Cron.parse(expression, timezone)
        except CronError as error:
            self.problems.add((*loc, "cron"), str(error), "value_error")
            return None
        try:
            validate_inputs(inputs, given)
        except InputValidationError as error:
            for problem in error.problems:
                self.problems.add((*loc, *problem.loc), problem.msg, problem.type)
            return None
        return ScheduleSpec(cron, dict(given), Overlap(overlap), enabled)

    def _concurrency(self, raw: Any, inputs: Mapping[str, InputSpec]) -> Concurrency | None:
        """`concurrency: {limit, key}`: `limit` a positive integer, `key` an optional string
        template that reads only `inputs` (declared ones)."""
        loc: Loc = ("concurrency",)
        body = self.read.mapping(raw, loc, "a mapping with `limit` and an optional `key`")
        if body is None:
            return None
        self.read.only_keys(body, CONCURRENCY_FIELDS, loc)
        if "limit" not in body:
            self.problems.add(loc, "needs `limit`: how many runs may run at once", "missing")
            return None
        limit = self.read.integer(body["limit"], (*loc, "limit"), 1, MAX_CONCURRENCY_LIMIT)
        key = None
        if "key" in body:
            key = self._concurrency_key(body["key"], (*loc, "key"), inputs)
        return None if limit is None else Concurrency(limit, key, loc)

    def _concurrency_key(
        self, raw: Any, loc: Loc, inputs: Mapping[str, InputSpec]
    ) -> Template | None:
        if self.read.string(raw, loc) is None:
            return None
        template = self.read.template(raw, loc)
        if template is None:
            return None
        problems = 0
        for reference in sorted(template.references, key=str):
            first = reference.path[0] if reference.path else None
            if reference.root != "inputs":
                self.problems.add(
                    loc, f"a key may only read `inputs`, not {reference.root!r}", "reference"
                )
                problems += 1
            elif isinstance(first, str) and first not in inputs:
                known = ", ".join(sorted(inputs)) or "none declared"
                self.problems.add(loc, f"unknown input {first!r} (inputs: {known})", "reference")
                problems += 1
        return None if problems else template

    def _outputs(self, raw: Any) -> list[FlowOutput]:
        entries: list[tuple[Any, Any, Loc]] = []
        if isinstance(raw, list):
            for index, item in enumerate(raw):
                fields = self.read.mapping(item, ("outputs", index))
                if fields is not None:
                    self.read.only_keys(fields, OUTPUT_FIELDS, ("outputs", index))
                    if "value" not in fields:
                        self.problems.add(
                            ("outputs", index), "an output needs a `value`", "missing"
                        )
                    entries.append((fields.get("name"), fields.get("value"), ("outputs", index)))
        elif isinstance(raw, Mapping):
            entries = [(name, value, ("outputs", name)) for name, value in raw.items()]
        else:
            self.problems.add(("outputs",), "must be a list or a mapping of outputs", "type_error")
        outputs: list[FlowOutput] = []
        seen: set[str] = set()
        for name, value, loc in entries:
            checked = self.read.identifier(name, (*loc, "name") if loc[-1] != name else loc)
            template = self.read.template(value, loc)
            if checked in seen:
                self.problems.add(loc, f"duplicate output {checked!r}", "duplicate")
            if checked is not None and template is not None:
                seen.add(checked)
                outputs.append(FlowOutput(checked, template, loc))
        return outputs

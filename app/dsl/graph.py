"""The step graph: who waits for whom, and whether every reference makes sense.

Order. In `sequential` mode each top-level step waits for the one listed before it; in `dag`
mode a step waits for the steps its expressions reference. In both, `depends_on` adds waits,
and handler steps (`on_error: [...]`) wait for the step they handle (and for each other, in
order). A step that waits for X also waits for X's handlers, so "X is finished" always means
"X completed, was skipped, or failed and was handled".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from app.dsl.catalog import RESERVED_OUTPUTS, TaskCatalog
from app.dsl.expressions import Reference
from app.dsl.models import ConnectionSpec, FlowOutput, InputSpec, Mode, Step
from app.dsl.problems import ProblemCollector
from app.errors import Loc

RESERVED_NAMES = frozenset({"inputs", "context", "env", "index"})
CONTEXT_FIELDS = frozenset({"run_id", "flow", "attempt", "last_error"})


@dataclass(frozen=True)
class Graph:
    dependencies: Mapping[str, frozenset[str]]
    handlers: Mapping[str, tuple[str, ...]]


def build_graph(
    steps: Sequence[Step],
    mode: Mode,
    inputs: Mapping[str, InputSpec],
    strict_inputs: bool,
    connections: Mapping[str, ConnectionSpec],
    outputs: Sequence[FlowOutput],
    catalog: TaskCatalog,
    problems: ProblemCollector,
) -> Graph:
    """Dependencies of every step; every graph and reference problem is recorded."""
    by_id = _unique_steps(steps, problems)
    handlers = _handlers(steps)
    names = _Names(by_id, inputs, strict_inputs, catalog, problems)
    previous = _previous_steps(steps, mode)
    direct = {
        step.id: _direct_dependencies(step, mode, by_id, previous, problems)
        for step in by_id.values()
    }
    dependencies = _settled(direct, handlers)
    order = _topological_order(dependencies, by_id, problems)
    if order is not None:
        for step_id, ancestors in _with_ancestors(order, dependencies):
            names.check_step(by_id[step_id], ancestors)
    for output in outputs:
        names.check(output.value.references, output.loc, visible_steps=by_id)
    for connection in connections.values():
        for name, template in connection.params.items():
            for reference in template.references:
                if reference.root != "env":
                    problems.add(
                        (*connection.loc, name),
                        f"only `env` is visible in connections, not {reference.root!r}",
                        "scope",
                    )
    return Graph(dependencies, handlers)


def _unique_steps(steps: Sequence[Step], problems: ProblemCollector) -> dict[str, Step]:
    by_id: dict[str, Step] = {}
    for step in steps:
        if step.id in by_id:
            problems.add((*step.loc, "id"), f"duplicate step id {step.id!r}", "duplicate")
        elif step.id in RESERVED_NAMES:
            problems.add((*step.loc, "id"), f"{step.id!r} is a reserved name", "reserved")
        else:
            by_id[step.id] = step
    return by_id


def _handlers(steps: Sequence[Step]) -> dict[str, tuple[str, ...]]:
    handlers: dict[str, list[str]] = {}
    for step in steps:
        if step.handler_of is not None:
            handlers.setdefault(step.handler_of, []).append(step.id)
    return {parent: tuple(ids) for parent, ids in handlers.items()}


def _previous_steps(steps: Sequence[Step], mode: Mode) -> dict[str, str]:
    """The step each step follows by its place in the definition, in one pass: a handler
    follows the step it handles (the first handler) or the handler before it; in `sequential`
    mode a top-level step follows the top-level step before it. A repeated id keeps the place
    of its first occurrence (the step `_unique_steps` keeps)."""
    previous: dict[str, str] = {}
    last_top_level: str | None = None
    last_handler: dict[str, str] = {}  # handled step -> its last handler so far
    for step in steps:
        if step.handler_of is not None:
            before: str | None = last_handler.get(step.handler_of, step.handler_of)
            last_handler[step.handler_of] = step.id
        elif mode is Mode.SEQUENTIAL:
            before, last_top_level = last_top_level, step.id
        else:
            continue
        if before is not None:
            previous.setdefault(step.id, before)
    return previous


def step_references(step: Step) -> set[str]:
    """Roots of every reference a step makes (arguments, condition, for_each)."""
    return {reference.root for reference in _references(step)}


def _references(step: Step) -> Iterable[Reference]:
    for template in step.arguments.values():
        yield from template.references
    if step.condition is not None:
        yield from step.condition.references
    if step.for_each is not None:
        yield from step.for_each.items.references


def _direct_dependencies(
    step: Step,
    mode: Mode,
    by_id: Mapping[str, Step],
    previous: Mapping[str, str],
    problems: ProblemCollector,
) -> set[str]:
    waits: set[str] = set()
    if step.id in previous:
        waits.add(previous[step.id])
    for index, other in enumerate(step.depends_on):
        if other not in by_id:
            problems.add(
                (*step.loc, "depends_on", index), f"unknown step {other!r}", "unknown_step"
            )
        elif other == step.id:
            problems.add(
                (*step.loc, "depends_on", index), "a step cannot depend on itself", "cycle"
            )
        else:
            waits.add(other)
    if mode is Mode.DAG:
        waits |= {root for root in step_references(step) if root in by_id and root != step.id}
    return waits


def _settled(
    direct: Mapping[str, set[str]], handlers: Mapping[str, tuple[str, ...]]
) -> dict[str, frozenset[str]]:
    """Make waiting for X also wait for X's last handler (recursively).

    X's own handlers are the exception: they run because X failed, so they wait for X alone.
    """
    handled_by = {handler: parent for parent, ids in handlers.items() for handler in ids}

    def handled(step_id: str) -> set[str]:
        """The steps that `step_id` is a handler of, directly or through other handlers."""
        found: set[str] = set()
        while step_id in handled_by:
            step_id = handled_by[step_id]
            found.add(step_id)
        return found

    def settle(target: str) -> set[str]:
        chain = {target}
        while target in handlers:
            target = handlers[target][-1]
            chain.add(target)
        return chain

    resolved: dict[str, frozenset[str]] = {}
    for step_id, waits in direct.items():
        mine = handled(step_id)
        expanded: set[str] = set()
        for target in waits:
            expanded |= {target} if target in mine else settle(target)
        resolved[step_id] = frozenset(expanded - {step_id})
    return resolved


def _topological_order(
    dependencies: Mapping[str, frozenset[str]],
    by_id: Mapping[str, Step],
    problems: ProblemCollector,
) -> list[str] | None:
    remaining = {step_id: set(waits) for step_id, waits in dependencies.items()}
    order: list[str] = []
    ready = [step_id for step_id, waits in remaining.items() if not waits]
    dependents: dict[str, list[str]] = {}
    for step_id, waits in remaining.items():
        for target in waits:
            dependents.setdefault(target, []).append(step_id)
    while ready:
        step_id = ready.pop()
        order.append(step_id)
        for dependent in dependents.get(step_id, ()):
            remaining[dependent].discard(step_id)
            if not remaining[dependent]:
                ready.append(dependent)
    if len(order) == len(remaining):
        return order
    cycle = _find_cycle({step_id: waits for step_id, waits in remaining.items() if waits})
    problems.add(by_id[cycle[0]].loc, "cycle: " + " -> ".join([*cycle, cycle[0]]), "cycle")
    return None


def _find_cycle(waits: Mapping[str, set[str]]) -> list[str]:
    """One cycle among steps that all still wait for something (so one must exist)."""
    path: list[str] = []
    seen: dict[str, int] = {}
    current = min(waits)
    while current not in seen:
        seen[current] = len(path)
        path.append(current)
        current = min(target for target in waits[current] if target in waits)
    return list(reversed(path[seen[current] :]))


def _with_ancestors(
    order: Sequence[str], dependencies: Mapping[str, frozenset[str]]
) -> Iterator[tuple[str, _Ancestors]]:
    """Each step (in topological order) with its ancestors.

    Ancestors are bitsets over positions in `order` (Python integers), each built from its
    dependencies' sets: a few machine-word operations per edge instead of a set of ids per
    step, and a set is dropped once every step that needs it was built, so a long chain
    holds one set at a time (5,000 steps: a few milliseconds, not gigabytes).
    """
    position = {step_id: index for index, step_id in enumerate(order)}
    unbuilt_dependents = Counter(target for waits in dependencies.values() for target in waits)
    built: dict[str, int] = {}
    for step_id in order:
        bits = 0
        for target in dependencies[step_id]:
            bits |= built[target] | (1 << position[target])
            unbuilt_dependents[target] -= 1
            if not unbuilt_dependents[target]:
                del built[target]
        yield step_id, _Ancestors(bits, position)
        if unbuilt_dependents[step_id]:
            built[step_id] = bits


class _Ancestors(Container[str]):
    """`step_id in ancestors`: whether that step finishes before this one starts."""

    __slots__ = ("_bits", "_position")

    def __init__(self, bits: int, position: Mapping[str, int]) -> None:
        self._bits = bits
        self._position = position

    def __contains__(self, step_id: object) -> bool:
        index = self._position.get(step_id) if isinstance(step_id, str) else None
        return index is not None and bool(self._bits >> index & 1)


class _Names:
    """Checks that each name an expression uses exists and is visible where it is used."""

    def __init__(
        self,
        by_id: Mapping[str, Step],
        inputs: Mapping[str, InputSpec],
        strict_inputs: bool,
        catalog: TaskCatalog,
        problems: ProblemCollector,
    ) -> None:
        self.by_id = by_id
        self.inputs = inputs
        self.strict_inputs = strict_inputs
        self.catalog = catalog
        self.problems = problems

    def check_step(self, step: Step, ancestors: Container[str]) -> None:
        loop_names = {step.for_each.variable, "index"} if step.for_each else set()
        for name, template in step.arguments.items():
            loc = (*step.arguments_loc, name)
            self.check(template.references, loc, ancestors, loop_names, step.id)
        if step.condition is not None:
            self.check(step.condition.references, (*step.loc, "if"), ancestors, self_id=step.id)
        if step.for_each is not None:
            loc = (*step.loc, "for_each")
            self.check(step.for_each.items.references, loc, ancestors, self_id=step.id)

    def check(
        self,
        references: Iterable[Reference],
        loc: Loc,
        visible_steps: Container[str] = (),
        loop_names: Container[str] = (),
        self_id: str | None = None,
    ) -> None:
        """Record a problem for each reference that names nothing visible here.

        `visible_steps` is a container, never copied: a step's ancestors may be thousands.
        """
        for reference in sorted(references, key=lambda ref: (ref.root, str(ref.path))):
            message = self._problem(reference, visible_steps, loop_names, self_id)
            if message:
                self.problems.add(loc, message, "reference")

    def _problem(
        self,
        reference: Reference,
        visible: Container[str],
        loops: Container[str],
        self_id: str | None,
    ) -> str | None:
        root, path = reference.root, reference.path
        first = path[0] if path and isinstance(path[0], str) else None
        if root in loops:
            return None
        if root == "inputs":
            if first is not None and self.strict_inputs and first not in self.inputs:
                known = ", ".join(sorted(self.inputs)) or "none declared"
                return f"unknown input {first!r} (inputs: {known})"
            return None
        if root == "context":
            if first is not None and first not in CONTEXT_FIELDS:
                return (
                    f"context has no field {first!r} (fields: {', '.join(sorted(CONTEXT_FIELDS))})"
                )
            return None
        if root == "env":
            return "`env` is only visible in `connections:`"
        if root == self_id:
            return f"step {root!r} cannot refer to itself"
        step = self.by_id.get(root)
        if step is None:
            return f"unknown name {root!r}: not an input, a step id or a context field"
        if root not in visible:
            return f"step {root!r} is not an ancestor of this step: it may not have run yet"
        outputs = known_outputs(step, self.catalog)
        if first is not None and outputs is not None and first not in outputs | RESERVED_OUTPUTS:
            known = ", ".join(sorted(outputs | RESERVED_OUTPUTS))
            return f"step {root!r} has no output {first!r} (outputs: {known})"
        return None


def known_outputs(step: Step, catalog: TaskCatalog) -> frozenset[str] | None:
    """The outputs a step exposes, when they are known before it runs."""
    if step.outputs is not None:
        return frozenset(step.outputs)
    spec = catalog.get(step.task)
    if spec is None:
        return None
    return spec.outputs

"""`FlowExecutor`: run flow definitions in process.

    executor = FlowExecutor(registry)
    outputs = await executor.execute_flow(flow_yaml, inputs={"user_id": 1})

No service and no database are needed: runs are recorded in an in-memory store unless another
`RunStore` is given. `${env...}` sees the process environment over a `.env` file in the
working directory, unless `env` is given. Connections are opened lazily; unless a shared
`ConnectionManager` is given, each call closes the connections it opened before returning.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.connections.manager import ConnectionManager
from app.domain.formats import Format
from app.domain.runs import RunStatus
from app.domain.storable import json_data
from app.dsl.definitions import build_definition
from app.dsl.inputs import validate_inputs
from app.dsl.limits import DEFAULT_LIMITS, DefinitionLimits
from app.dsl.loading import Document, load_document
from app.dsl.models import FlowDefinition
from app.engine.attempts import TaskOutcome, TaskRunner
from app.engine.children import ChildRuns
from app.engine.elements import ElementRunner
from app.engine.environment import default_environment
from app.engine.limits import RunLimits
from app.engine.memory_store import InMemoryRunStore
from app.engine.observer import NO_OBSERVER, EngineObserver
from app.engine.resume import Resumption
from app.engine.run import RunExecution, RunResult
from app.engine.store import RunStore
from app.engine.stubs import stubbed_outcomes
from app.errors import DefinitionError, FlowFailedError, Problem, UnstorableValueError
from app.tasks.builtins import builtin_registry
from app.tasks.registry import TaskRegistry

Source = str | bytes | FlowDefinition


@dataclass(frozen=True)
class ParsedFlow:
    document: Document
    definition: FlowDefinition


class FlowExecutor:
    def __init__(
        self,
        registry: TaskRegistry | None = None,
        *,
        store: RunStore | None = None,
        connections: ConnectionManager | None = None,
        env: Mapping[str, str] | None = None,
        cache_size: int = 256,
        limits: RunLimits | None = None,
        definition_limits: DefinitionLimits = DEFAULT_LIMITS,
        observer: EngineObserver = NO_OBSERVER,
        children: ChildRuns | None = None,
    ) -> None:
        """`limits`: what a run may keep, and how long an attempt may run when its step sets
        no timeout (by default, as long as it takes); `definition_limits`: what a definition
        may ask for (steps, timeouts, retry delays); `observer`: told of each attempt and
        each task's outcome (metrics, logs, traces: `engine/observer.py`); `children`: where
        a `flow` step starts its child run (the service's; library use has none)."""
        self.registry = builtin_registry()
        if registry is not None:
            self.registry.include(registry)
        self.store: RunStore = store if store is not None else InMemoryRunStore()
        self.env: Mapping[str, str] = default_environment() if env is None else env
        self._shared_connections = connections
        self._connection_types = (connections or ConnectionManager()).types
        self._definitions: OrderedDict[str | bytes, FlowDefinition] = OrderedDict()
        self._cache_size = cache_size
        self.limits = limits or RunLimits()
        self.definition_limits = definition_limits
        self.observer = observer
        self.children = children

    def parse(self, source: str | bytes, *, format: Format | None = None) -> ParsedFlow:
        """Load and validate a definition, keeping the loaded document; DefinitionError if not."""
        return self.parse_document(load_document(source, format=format))

    def parse_document(self, document: Document) -> ParsedFlow:
        """Validate a loaded definition (one written inside another document: a fixture's
        inline flow, whose problems then point into that document)."""
        _check_storable(document)
        definition = build_definition(
            document, self.registry.catalog(), self._connection_types, limits=self.definition_limits
        )
        return ParsedFlow(document, definition)

    def load(self, source: Source, *, format: Format | None = None) -> FlowDefinition:
        """Parse and validate a definition (cached by its text); DefinitionError if invalid."""
        if isinstance(source, FlowDefinition):
            return source
        definition = self._definitions.get(source)
        if definition is None:
            definition = self.parse(source, format=format).definition
            self._definitions[source] = definition
            if len(self._definitions) > self._cache_size:
                self._definitions.popitem(last=False)
        else:
            self._definitions.move_to_end(source)
        return definition

    async def execute_flow(
        self, source: Source, inputs: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run the flow to its end and return its outputs; FlowFailedError if it failed."""
        result = await self.run(source, inputs)
        if result.status is not RunStatus.COMPLETED:
            assert result.error is not None
            raise FlowFailedError(result.run_id, result.error)
        return result.outputs or {}

    async def run(
        self,
        source: Source,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        stubs: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run the flow to its end; a failed run is a result, not an exception.

        `stubs`: `{step_id: outputs}` of steps that do not run: each counts as completed with
        those outputs (`engine/stubs.py`). Invalid definitions (DefinitionError), inputs
        (InputValidationError) and stubs (StubError) are refused before the run starts.
        """
        definition = self.load(source)
        values = validate_inputs(definition.inputs, inputs or {}, strict=definition.strict_inputs)
        return await self.run_checked(definition, values, run_id or str(uuid.uuid4()), stubs=stubs)

    async def run_checked(
        self,
        definition: FlowDefinition,
        inputs: Mapping[str, Any],
        run_id: str,
        *,
        stubs: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run a new run whose inputs were checked when it was created (`validate_inputs`):
        they are validated once per run, not again here."""
        stubbed = stubbed_outcomes(definition, stubs, self.limits) if stubs else None
        return await self._execute(definition, inputs, run_id, None, stubbed)

    async def resume(self, definition: FlowDefinition, run_id: str) -> RunResult:
        """Run a run again from what the store kept of it: a retried run, or one taken over
        from a worker that died. Its finished steps are kept, its unfinished attempts go on
        where they were (`resume.Resumption`), the rest runs anew."""
        stored = await self.store.load(run_id)
        resumption = Resumption.of(definition, stored)
        return await self._execute(definition, stored.inputs, run_id, resumption)

    async def _execute(
        self,
        definition: FlowDefinition,
        inputs: Mapping[str, Any],
        run_id: str,
        resumption: Resumption | None,
        stubs: Mapping[str, TaskOutcome] | None = None,
    ) -> RunResult:
        connections = self._shared_connections or ConnectionManager()
        runner = TaskRunner(
            run_id=run_id,
            flow=definition.name,
            registry=self.registry,
            store=self.store,
            connections=connections,
            connection_specs=definition.connections,
            env=self.env,
            limits=self.limits,
            observer=self.observer,
        )
        restored = resumption.restored if resumption else None
        points = resumption.points if resumption else None
        waiting = resumption.waiting if resumption else None
        try:
            execution = RunExecution(
                definition,
                inputs,
                run_id,
                runner,
                self.store,
                restored,
                points,
                stubs,
                waiting,
                self.children,
                resumption.untouched if resumption else frozenset(),
                resumption.shared if resumption else frozenset(),
            )
            return await execution.execute()
        finally:
            if self._shared_connections is None:
                await connections.aclose()

    def element_runner(self, definition: FlowDefinition, run_id: str) -> ElementRunner:
        """Runs elements of the run's shared fan-outs here, claimed by this process's worker
        (`engine/elements.py`); the connections are the executor's, shared."""
        return ElementRunner(
            run_id=run_id,
            flow=definition.name,
            registry=self.registry,
            connections=self._shared_connections or ConnectionManager(),
            connection_specs=definition.connections,
            env=self.env,
            limits=self.limits,
            observer=self.observer,
        )


def _check_storable(document: Document) -> None:
    """The service stores a definition's data as JSON too: what no store can hold (`.inf`,
    `.nan`, nesting past MAX_DEPTH) is refused where it stands. Keys may be numbers: JSON turns
    them into text, and the definition's text stays its truth."""
    try:
        json_data(document.data, root="definition", text_keys=False)
    except UnstorableValueError as error:
        loc = error.loc[1:]
        position = document.position(loc)
        line, column = (position.line, position.column) if position else (None, None)
        problem = Problem(loc, error.reason, "unstorable_value", line, column)
        raise DefinitionError([problem]) from None

"""Registering, reading and deleting flow definitions (every version is kept)."""

from __future__ import annotations

import asyncio
import hashlib

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dsl.models import FlowDefinition
from app.engine.executor import FlowExecutor, Format, ParsedFlow
from app.errors import DefinitionError, Problem, UnknownFlowError
from app.store import definitions
from app.store.records import FlowSummary, FlowVersion, Registration, StepRef, ValidationReport

_REGISTRATION_ATTEMPTS = 5  # concurrent registrations of one name race for the next version


class FlowService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], executor: FlowExecutor) -> None:
        self.sessions = sessions
        self.executor = executor

    async def validate(self, source: str | bytes, format: Format | None = None) -> ValidationReport:
        """Check a definition without saving it; DefinitionError lists every problem."""
        return _report((await self._parse(source, format)).definition)

    async def _parse(self, source: str | bytes, format: Format | None) -> ParsedFlow:
        """Parse off the event loop: a large definition (or a small one whose YAML aliases
        expand) takes a noticeable time to validate, and every other request would wait."""
        return await asyncio.to_thread(self.executor.parse, source, format=format)

    async def register(
        self, source: str | bytes, format: Format | None = None, *, name: str | None = None
    ) -> Registration:
        """Store a new version unless the body equals the current one.

        With `name` (PUT /flows/{name}), the definition must carry that name.
        """
        parsed = await self._parse(source, format)  # refuses bytes that are not UTF-8
        text = source.decode("utf-8") if isinstance(source, bytes) else source
        definition = parsed.definition
        if name is not None and definition.name != name:
            where = ("id",) if parsed.document.data.get("start_task") else ("flow",)
            message = f"the definition is named {definition.name!r}, but the path says {name!r}"
            raise DefinitionError([Problem(where, message, "name_mismatch")])
        checksum = hashlib.sha256(text.encode("utf-8")).hexdigest()
        for attempt in range(_REGISTRATION_ATTEMPTS):
            try:
                return await self._store_version(parsed, text, checksum)
            except IntegrityError:
                if attempt == _REGISTRATION_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _store_version(self, parsed: ParsedFlow, text: str, checksum: str) -> Registration:
        definition = parsed.definition
        async with self.sessions.begin() as session:
            current = await definitions.latest(session, definition.name)
            if current is not None and current.checksum == checksum:
                return Registration(definitions.to_version(current), created=False)
            row = await definitions.add(
                session,
                name=definition.name,
                number=current.version + 1 if current else 1,
                definition=parsed.document.data,
                source=text,
                format=parsed.document.format,
                checksum=checksum,
                description=definition.description,
            )
            return Registration(definitions.to_version(row), created=True)

    async def list_flows(self) -> list[FlowSummary]:
        async with self.sessions() as session:
            return [
                definitions.to_summary(row) for row in await definitions.latest_of_each(session)
            ]

    async def get(self, name: str, version: int | None = None) -> FlowVersion:
        async with self.sessions() as session:
            return definitions.to_version(await definitions.find(session, name, version))

    async def versions(self, name: str) -> list[FlowVersion]:
        async with self.sessions() as session:
            rows = await definitions.versions(session, name)
        if not rows:
            raise UnknownFlowError(f"no flow is registered under the name {name!r}")
        return [definitions.to_version(row) for row in rows]

    async def delete(self, name: str) -> None:
        """Delete the flow, its versions and its runs."""
        async with self.sessions.begin() as session:
            if not await definitions.delete_flow(session, name):
                raise UnknownFlowError(f"no flow is registered under the name {name!r}")


def _report(definition: FlowDefinition) -> ValidationReport:
    steps = tuple(
        StepRef(
            step.id, step.task, tuple(sorted(definition.dependencies[step.id])), step.handler_of
        )
        for step in definition.steps
    )
    edges = tuple(
        (dependency, step.id)
        for step in definition.steps
        for dependency in sorted(definition.dependencies[step.id])
    )
    return ValidationReport(definition.name, steps, edges)

"""Running a fixture: its flow, in process, with its stubs; the differences from `expect`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.domain.runs import RunError, RunStatus
from app.dsl.loading import Document
from app.dsl.models import FlowDefinition
from app.engine.environment import default_environment
from app.engine.executor import FlowExecutor
from app.engine.run import RunResult
from app.errors import (
    DefinitionError,
    FixtureError,
    InputValidationError,
    Problem,
    StubError,
    TaskModuleError,
)
from app.tasks.loading import load_task_modules
from app.tasks.registry import TaskRegistry
from app.testing.comparing import differences
from app.testing.reading import FlowText, ReadFixture, fixture_error, read_fixture


@dataclass(frozen=True)
class FixtureResult:
    path: Path
    run: RunResult
    differences: tuple[str, ...]  # empty: the run gave what the fixture expects

    @property
    def passed(self) -> bool:
        return not self.differences

    @property
    def status(self) -> RunStatus:
        return self.run.status

    @property
    def outputs(self) -> dict[str, Any] | None:
        return self.run.outputs

    @property
    def error(self) -> RunError | None:
        return self.run.error

    def report(self) -> str:
        """The differences, one per line, under the fixture's name."""
        lines = [f"{self.path}: {len(self.differences)} difference(s)"]
        lines.extend(f"  {difference}" for difference in self.differences)
        return "\n".join(lines)


async def check_fixture(
    path: str | os.PathLike[str], *, tasks: Sequence[str] = ()
) -> FixtureResult:
    """Run the fixture at `path` and compare; FixtureError when it cannot be run.

    `tasks`: task modules added to the fixture's own (`tasks:`); with neither, `flow.py`
    beside the flow (beside the fixture for an inline flow) when there is one."""
    read = read_fixture(Path(path))
    executor = FlowExecutor(_registry(read, tasks), env=default_environment(read.directory))
    definition = _definition(read, executor)
    fixture = read.fixture
    try:
        run = await executor.run(definition, fixture.inputs, stubs=fixture.stubs)
    except InputValidationError as error:
        raise read.problems(error.problems) from None
    except StubError as error:
        raise read.problems(error.problems) from None
    found = differences(fixture.expect, run.status, run.outputs, run.error)
    return FixtureResult(read.path, run, tuple(found))


def run_fixture(path: str | os.PathLike[str], *, tasks: Sequence[str] = ()) -> FixtureResult:
    """The pytest helper: run the fixture; AssertionError with the differences when the run
    does not give what it expects, FixtureError when it cannot be run. From a coroutine,
    await `check_fixture` instead."""
    result = asyncio.run(check_fixture(path, tasks=tasks))
    if not result.passed:
        raise AssertionError(result.report())
    return result


def _registry(read: ReadFixture, extra: Sequence[str]) -> TaskRegistry:
    names = [_beside(read.path.parent, name) for name in read.fixture.tasks]
    names += [name for name in extra if name not in names]
    default = read.directory / "flow.py"
    if not names and default.is_file():
        names.append(str(default))
    try:
        return load_task_modules(names)
    except TaskModuleError as error:
        raise read.problems([Problem(("tasks",), error.message)]) from None


def _beside(directory: Path, name: str) -> str:
    """A `.py` path of the fixture's is relative to the fixture; a dotted name stays one."""
    if name.endswith(".py") or "/" in name or "\\" in name:
        return str(directory / Path(name).expanduser())
    return name


def _definition(read: ReadFixture, executor: FlowExecutor) -> FlowDefinition:
    flow = read.flow
    try:
        if isinstance(flow, Document):
            return executor.parse_document(flow).definition
        return executor.parse(flow.text, format=flow.format).definition
    except DefinitionError as error:
        raise _flow_problems(read, flow, error) from None


def _flow_problems(
    read: ReadFixture, flow: FlowText | Document, error: DefinitionError
) -> FixtureError:
    if isinstance(flow, Document):  # placed in the fixture's own text
        return read.problems(error.problems, ("flow",))
    if flow.file is not None:  # placed in the flow's file
        return fixture_error(flow.file, None, error.problems)
    # Inline text: its lines count from the text's first line.
    problems = [
        Problem(
            ("flow", *problem.loc),
            f"{problem.msg} (line {problem.line}, column {problem.column} of the flow's text)"
            if problem.line is not None
            else problem.msg,
        )
        for problem in error.problems
    ]
    return read.problems(problems)

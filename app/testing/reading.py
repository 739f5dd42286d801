"""Reading a fixture file: its fields checked, each problem placed at its line and column.

A problem is reported as a compiler reports one, `FIXTURE:LINE:COLUMN: place: message`
(`place` the path of the bad field, e.g. `expect.failed.step`), so that an editor jumps there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from app.domain.fixtures import FIELDS, Expectation, ExpectedFailure, ExpectedOutputs, Fixture
from app.domain.formats import Format, format_of_path
from app.dsl.loading import Document
from app.dsl.reading.yaml_reader import read_yaml
from app.errors import DefinitionError, FixtureError, Loc, Problem, format_loc


@dataclass(frozen=True)
class FlowText:
    """A definition to parse: a file's text, or a text written inline in the fixture."""

    text: str
    format: Format | None
    file: Path | None  # None: inline


@dataclass(frozen=True)
class ReadFixture:
    path: Path
    fixture: Fixture
    document: Document  # the fixture's data and positions, to place later problems
    flow: FlowText | Document  # an inline mapping is a document of its own, placed in the file
    directory: Path  # where the flow is: its `flow.py` and `.env`

    def problems(self, problems: Iterable[Problem], prefix: Loc = ()) -> FixtureError:
        """Problems found while running (inputs, stubs, an inline flow) as the fixture's."""
        return fixture_error(self.path, self.document, problems, prefix)


def read_fixture(path: Path) -> ReadFixture:
    """The fixture at `path`, checked; FixtureError saying where it is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FixtureError(f"{path}: cannot read the fixture: {error}") from error
    try:
        reading = read_yaml(text.removeprefix("\ufeff"))
    except DefinitionError as error:
        raise fixture_error(path, None, error.problems) from None
    document = Document(reading.data, MappingProxyType(reading.positions), "yaml")
    checker = _Checker(path, document)
    fixture, flow = checker.fixture()
    if checker.found:
        raise fixture_error(path, document, checker.found)
    directory = flow.file.parent if isinstance(flow, FlowText) and flow.file else path.parent
    return ReadFixture(path, fixture, document, flow, directory)


def fixture_error(
    path: Path, document: Document | None, problems: Iterable[Problem], prefix: Loc = ()
) -> FixtureError:
    """One line per problem, placed in the fixture: `FIXTURE:LINE:COLUMN: place: message`."""
    placed = []
    for problem in problems:
        loc = (*prefix, *problem.loc)
        line, column = problem.line, problem.column
        if line is None and document is not None:
            position = document.position(loc)
            line, column = (position.line, position.column) if position else (None, None)
        where = f"{path}:{line}:{column}" if line is not None else str(path)
        text = f"{where}: {format_loc(loc) or '<fixture>'}: {problem.msg}"
        placed.append(((line or 0, column or 0), text))
    placed.sort(key=lambda found: found[0])  # in the file's order, as an editor lists them
    return FixtureError("\n".join(text for _, text in placed))


class _Checker:
    def __init__(self, path: Path, document: Document) -> None:
        self.path = path
        self.document = document
        self.data = document.data
        self.found: list[Problem] = []

    def problem(self, loc: Loc, msg: str) -> None:
        self.found.append(Problem(loc, msg))

    def fixture(self) -> tuple[Fixture, FlowText | Document]:
        data = self.data
        if not isinstance(data, dict):
            self.problem((), "a fixture is a mapping with the fields flow, inputs, stubs, expect")
            data = {}
        for key in data:
            if key not in FIELDS:
                self.problem((key,), f"unknown field; a fixture's fields are {', '.join(FIELDS)}")
        flow = self.flow(data.get("flow"))
        inputs = self.mapping(("inputs",), data.get("inputs", {}))
        stubs = self.stubs(data.get("stubs", {}))
        expect = self.expect(data.get("expect"))
        tasks = self.tasks(data.get("tasks", []))
        return Fixture(data.get("flow"), inputs, expect, stubs, tasks), flow

    def flow(self, value: Any) -> FlowText | Document:
        if value is None:
            self.problem(("flow",), "missing: a path to the flow, or its definition inline")
            return FlowText("", None, None)
        if isinstance(value, dict):
            return self.inline_document(value)
        if not isinstance(value, str):
            self.problem(("flow",), "a path to the flow, or its definition (text or mapping)")
            return FlowText("", None, None)
        if "\n" in value or value.lstrip().startswith("{"):  # the definition's text
            return FlowText(value, None, None)
        file = self.path.parent / value
        try:
            return FlowText(file.read_text(encoding="utf-8"), format_of_path(file.name), file)
        except (OSError, UnicodeDecodeError) as error:
            self.problem(("flow",), f"cannot read the flow {str(file)!r}: {error}")
            return FlowText("", None, None)

    def inline_document(self, value: dict[str, Any]) -> Document:
        """The inline definition with its own positions, which are in the fixture's text."""
        positions = {
            loc[1:]: position
            for loc, position in self.document.positions.items()
            if loc[:1] == ("flow",)
        }
        return Document(value, MappingProxyType(positions), "yaml")

    def mapping(self, loc: Loc, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(loc, f"a mapping, not {_kind(value)}")
            return {}
        return value

    def stubs(self, value: Any) -> dict[str, Any]:
        stubs = self.mapping(("stubs",), value)
        for step_id, outputs in stubs.items():
            if not isinstance(outputs, dict):
                self.problem(
                    ("stubs", step_id), f"the step's outputs, a mapping, not {_kind(outputs)}"
                )
        return stubs

    def expect(self, value: Any) -> Expectation:
        loc: Loc = ("expect",)
        if value is None:
            self.problem(loc, "missing: `outputs: {...}` or `failed: {step: ...}`")
            return ExpectedOutputs({})
        if not isinstance(value, dict) or len(value) != 1 or not {"outputs", "failed"} & set(value):
            self.problem(loc, "one of `outputs: {...}` or `failed: {step: ...}`")
            return ExpectedOutputs({})
        if "outputs" in value:
            return ExpectedOutputs(self.mapping((*loc, "outputs"), value["outputs"]))
        return self.failure((*loc, "failed"), value["failed"])

    def failure(self, loc: Loc, value: Any) -> ExpectedFailure:
        if not isinstance(value, dict):
            self.problem(loc, "a mapping: `{step: STEP_ID, message: TEXT}` (message optional)")
            return ExpectedFailure(None)
        for key in value:
            if key not in ("step", "message"):
                self.problem((*loc, key), "unknown field; `failed` has step and message")
        if "step" not in value:
            self.problem(loc, "missing `step`: the step that fails (null: the run outside steps)")
        step, message = value.get("step"), value.get("message")
        if step is not None and not isinstance(step, str):
            self.problem((*loc, "step"), f"a step id, not {_kind(step)}")
        if message is not None and not isinstance(message, str):
            self.problem(
                (*loc, "message"), f"text the error message contains, not {_kind(message)}"
            )
        return ExpectedFailure(
            step if isinstance(step, str) else None, message if isinstance(message, str) else None
        )

    def tasks(self, value: Any) -> tuple[str, ...]:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            self.problem(("tasks",), "task modules: a list of dotted names or .py paths")
            return ()
        return tuple(names)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "text", bool: "a boolean"}.get(
        type(value), "a number"
    )

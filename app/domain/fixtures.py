"""A fixture: a flow, its inputs, the outputs of the steps to stub, and what the run must give.

The format `python -m app test` reads and `GET /runs/{id}/fixture` writes (DESIGN.md §10):

    flow: flow.yaml            # a path relative to the fixture, or the definition inline
    inputs: {user_id: 1}
    stubs:                     # steps that do not run: these are their outputs
      fetch_user: {rows: [{name: Alice}]}
    expect:
      outputs: {name: Alice}   # or: failed: {step: fetch_user, message: "not found"}

This module is the format's vocabulary and its writing; reading and running a fixture are
`app.testing`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

FIELDS = ("flow", "inputs", "stubs", "expect", "tasks")


@dataclass(frozen=True)
class ExpectedOutputs:
    """The run completes with exactly these outputs."""

    outputs: Mapping[str, Any]


@dataclass(frozen=True)
class ExpectedFailure:
    """The run fails at `step` (None: outside any step, e.g. its outputs), with an error
    message containing `message` when given."""

    step: str | None
    message: str | None = None


Expectation = ExpectedOutputs | ExpectedFailure


@dataclass(frozen=True)
class Fixture:
    flow: Any  # the definition's text, or its data; or (read from a file) a path to it
    inputs: Mapping[str, Any]
    expect: Expectation
    stubs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()  # task modules (dotted names or .py paths)

    def as_document(self) -> dict[str, Any]:
        """The fixture as plain data, its fields in the documented order."""
        expect: dict[str, Any]
        if isinstance(self.expect, ExpectedOutputs):
            expect = {"outputs": dict(self.expect.outputs)}
        else:
            failed: dict[str, Any] = {"step": self.expect.step}
            if self.expect.message is not None:
                failed["message"] = self.expect.message
            expect = {"failed": failed}
        document: dict[str, Any] = {
            "flow": self.flow,
            "inputs": dict(self.inputs),
            "stubs": {step: dict(outputs) for step, outputs in self.stubs.items()},
            "expect": expect,
        }
        if self.tasks:
            document["tasks"] = list(self.tasks)
        return document


def fixture_yaml(fixture: Fixture) -> str:
    """The fixture as YAML: a definition's text as a literal block, as it was written."""
    return yaml.dump(
        fixture.as_document(),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


class _Dumper(yaml.SafeDumper):
    """Safe YAML whose multi-line strings are literal blocks (`|`), readable as written."""


def _text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # A one-line `${...}` is quoted: the flow language reads an unquoted one as raw text,
    # which is the same string only when YAML would not have read it differently.
    style = "|" if "\n" in text else "'" if "${" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _text)

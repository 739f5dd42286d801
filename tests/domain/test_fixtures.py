"""`fixture_yaml`: what `GET /runs/{id}/fixture` writes reads back, through the flow language's
own YAML reader (what `python -m app test` uses), as exactly the values written."""

from __future__ import annotations

import pytest

from app.domain.fixtures import ExpectedFailure, ExpectedOutputs, Fixture, fixture_yaml
from app.dsl.reading.yaml_reader import read_yaml

SOURCE = """\
flow: X
steps:
  - set: {id: a, values: {m: ${ {'a': [1, 2]} }, n: "${'q'}"}}
  - set: {id: b, values: {t: ${a.m} }}
outputs: {t: ${b.t}}
"""


@pytest.mark.parametrize(
    "source",
    [
        SOURCE,
        SOURCE.rstrip("\n"),  # no final line break
        SOURCE.replace("steps:", "steps:   "),  # trailing spaces: not a literal block
        SOURCE.replace("  - set: {id: b", "\t- set: {id: b"),  # a tab
        '{"flow": "X", "steps": []}',  # JSON, as registered
    ],
)
def test_a_fixture_reads_back_as_written(source: str) -> None:
    values = {"colon": "${a}:b", "inside": "x ${y} z", "bool": "on", "date": "2024-01-01"}
    fixture = Fixture(source, values, ExpectedOutputs({"o": "${z}", "n": [1, 2.5, None]}))

    read = read_yaml(fixture_yaml(fixture)).data

    assert read == {
        "flow": source,
        "inputs": values,
        "stubs": {},
        "expect": {"outputs": {"o": "${z}", "n": [1, 2.5, None]}},
    }


def test_an_expected_failure_names_its_step_and_message_when_given() -> None:
    with_message = Fixture("flow: X\n", {}, ExpectedFailure("fetch", "not found"))
    outside_steps = Fixture("flow: X\n", {}, ExpectedFailure(None), tasks=("flow.py",))

    assert read_yaml(fixture_yaml(with_message)).data["expect"] == {
        "failed": {"step": "fetch", "message": "not found"}
    }
    assert read_yaml(fixture_yaml(outside_steps)).data["expect"] == {"failed": {"step": None}}
    assert read_yaml(fixture_yaml(outside_steps)).data["tasks"] == ["flow.py"]
    assert fixture_yaml(with_message).startswith("flow: |\n  flow: X\n")

"""`app.testing.run_fixture`: the pytest helper, used as a user's suite uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.runs import RunStatus
from app.errors import FixtureError
from app.testing import run_fixture

FLOW = """\
flow: Totals
inputs:
  - {name: prices, type: array, required: true}
steps:
  - set: {id: rates, values: {vat: 0.5}}
  - set:
      id: total
      values: {net: "${sum(inputs.prices)}", gross: "${sum(inputs.prices) * (1 + rates.vat)}"}
outputs:
  net: ${total.net}
  gross: ${total.gross}
  paid: ${total.net > 0}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    return write(tmp_path, "totals.yaml", FLOW)


def test_a_matching_fixture_returns_the_run(flow: Path) -> None:
    path = write(
        flow.parent,
        "ok.yaml",
        "flow: totals.yaml\ninputs: {prices: [2, 4]}\nstubs: {rates: {vat: 0}}\n"
        "expect: {outputs: {net: 6, gross: 6.0, paid: true}}\n",
    )

    result = run_fixture(path)

    assert result.passed
    assert result.status is RunStatus.COMPLETED
    assert result.outputs == {"net": 6, "gross": 6, "paid": True}


def test_a_mismatch_raises_assertion_error_with_the_report(flow: Path) -> None:
    path = write(
        flow.parent,
        "off.yaml",
        "flow: totals.yaml\ninputs: {prices: [2, 4]}\n"
        "expect: {outputs: {net: 6, gross: 6, paid: 1}}\n",
    )

    with pytest.raises(AssertionError) as failed:
        run_fixture(path)

    assert str(failed.value) == (
        f"{path}: 2 difference(s)\n"
        "  outputs.gross: expected 6, got 9.0\n"
        "  outputs.paid: expected 1, got True"  # a boolean is not a number
    )


def test_a_fixture_that_cannot_run_raises_fixture_error(flow: Path) -> None:
    path = write(flow.parent, "broken.yaml", "flow: totals.yaml\nexpect: {outputs: []}\n")

    with pytest.raises(FixtureError) as broken:
        run_fixture(path)

    assert f"{path}:2:10: expect.outputs: a mapping, not a list" in broken.value.message

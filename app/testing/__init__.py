"""Tests for flows: run a fixture (a flow, inputs, stubbed steps' outputs, what the run must
give) and report how the run differs.

    from app.testing import run_fixture

    def test_greeting() -> None:
        run_fixture("tests/fixtures/greeting.yaml")  # AssertionError listing the differences

`python -m app test FIXTURE...` runs the same from the command line; `GET /runs/{id}/fixture`
writes any past run as a fixture. The format is `app.domain.fixtures`'.
"""

from __future__ import annotations

from app.testing.running import FixtureResult, check_fixture, run_fixture

__all__ = ["FixtureResult", "check_fixture", "run_fixture"]

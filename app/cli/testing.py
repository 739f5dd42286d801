"""`python -m app test FIXTURE...`: run flows against fixtures and report the differences.

Every fixture runs (a broken one does not stop the others); each prints `PASS`, `FAIL` with
its differences, or `ERROR` with where it is wrong, then a summary line. Exit 0 when every
fixture matches, 1 when a run differs, 2 when a fixture cannot be run (usage error).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from app.errors import FixtureError
from app.testing import FixtureResult, check_fixture

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_command(commands: Any) -> None:
    test = commands.add_parser(
        "test", help="run flows against fixtures (YAML) and report how their runs differ"
    )
    test.add_argument("fixtures", nargs="+", type=Path, metavar="FIXTURE")
    test.add_argument(
        "--tasks",
        action="append",
        default=[],
        metavar="MODULE",
        help="task module (dotted name or .py path), added to each fixture's `tasks`; with "
        "neither, flow.py beside the flow if present",
    )
    test.set_defaults(command=run_tests)


def run_tests(arguments: argparse.Namespace) -> int:
    return asyncio.run(_run_all(arguments.fixtures, arguments.tasks))


async def _run_all(paths: list[Path], tasks: list[str]) -> int:
    passed = failed = broken = 0
    for path in paths:
        try:
            result = await check_fixture(path, tasks=tasks)
        except FixtureError as error:
            broken += 1
            print(f"ERROR {path}", file=sys.stdout)
            print(_indented(error.message), file=sys.stdout)
            continue
        if result.passed:
            passed += 1
            print(f"PASS  {path}")
        else:
            failed += 1
            print(f"FAIL  {path}")
            print(_indented(_differences(result)))
    print(_summary(passed, failed, broken))
    if broken:
        return EXIT_USAGE
    return EXIT_FAILED if failed else EXIT_OK


def _differences(result: FixtureResult) -> str:
    return "\n".join(result.differences)


def _indented(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _summary(passed: int, failed: int, broken: int) -> str:
    total = passed + failed + broken
    parts = [f"{passed} passed", f"{failed} failed"]
    if broken:
        parts.append(f"{broken} could not run")
    return f"{total} fixture{'s' if total != 1 else ''}: {', '.join(parts)}"

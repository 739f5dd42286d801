"""The `flowlang` compatibility package and console script: the tutorial's names for ours."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import app.cli
import flowlang
from app.engine import FlowExecutor
from app.tasks import TaskRegistry

REPO = Path(__file__).resolve().parents[2]
DOUBLE = """
flow: Double
inputs:
  - name: value
    type: integer
steps:
  - task: Double
    id: double
    inputs: {value: "${inputs.value}"}
    outputs: [result]
outputs:
  - name: result
    value: ${double.result}
"""


def test_the_tutorials_imports_are_ours() -> None:
    from flowlang import FlowExecutor as TutorialExecutor
    from flowlang import TaskRegistry as TutorialRegistry

    assert TutorialExecutor is FlowExecutor
    assert TutorialRegistry is TaskRegistry


async def test_a_flow_runs_as_the_tutorials_test_flow_runs_it() -> None:
    registry = flowlang.TaskRegistry()

    @registry.register("Double", description="Double a number")
    async def double(value: int) -> dict[str, int]:
        return {"result": value * 2}

    executor = flowlang.FlowExecutor(registry)
    result = await executor.execute_flow(DOUBLE, inputs={"value": 21})

    assert result == {"result": 42}


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_python_dash_m_flowlang_has_the_commands_of_python_dash_m_app() -> None:
    listed = run([sys.executable, "-m", "flowlang", "connection", "list"])
    example = run([sys.executable, "-m", "flowlang", "connection", "example", "redis"])
    unknown = run([sys.executable, "-m", "flowlang", "connection", "example", "mongodb"])

    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("✅ redis") for line in listed.stdout.splitlines())
    assert example.returncode == 0, example.stderr
    assert FlowExecutor(TaskRegistry()).load(example.stdout).name == "RedisExample"
    assert unknown.returncode == 2
    assert "known: postgres, redis, http" in unknown.stderr


def test_usage_names_the_command_the_user_typed() -> None:
    flowlang_usage = run([sys.executable, "-m", "flowlang", "frobnicate"])
    app_usage = run([sys.executable, "-m", "app", "frobnicate"])

    assert flowlang_usage.returncode == app_usage.returncode == 2
    assert flowlang_usage.stderr.startswith("usage: flowlang ")
    assert app_usage.stderr.startswith("usage: python -m app ")


def test_the_console_script_is_the_command_line_of_app() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["flowlang"].split(":")

    assert getattr(__import__(module, fromlist=[function]), function) is app.cli.main


def test_the_installed_flowlang_command_lists_the_plugins() -> None:
    """`pip install -e .` (the README's command 1) puts `flowlang` beside the interpreter."""
    script = Path(sys.executable).parent / "flowlang"
    if not script.exists():
        reason = f"{script} is not installed: run `pip install -e .` again"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)

    listed = run([str(script), "connection", "list"])
    example = run([str(script), "connection", "example", "redis"])

    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("✅ postgres") for line in listed.stdout.splitlines())
    assert example.returncode == 0, example.stderr
    assert "type: redis" in example.stdout

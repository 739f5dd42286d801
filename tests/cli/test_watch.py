"""`python -m app watch`, driven as a user does: start it with the tutorial's flags, save
files, read what it prints. Each wait polls its output with a deadline."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from app.cli.watch import WatchSession
from tests.watching import DEADLINE, Watching
from tests.watching import watching as watching_process

REPO = Path(__file__).resolve().parents[2]

FLOW = """\
flow: Watched
inputs:
  - {name: n, type: integer}
steps:
  - task: Scale
    id: scale
    inputs: {x: "${inputs.n}"}
  - set: {id: each, for_each: "${[1, 2, 3]}", values: {v: "${item}"}}
outputs:
  scaled: ${scale.y}
"""

TASKS = """\
from app.tasks import TaskRegistry

registry = TaskRegistry()


@registry.register("Scale")
def scale(x: int) -> dict:
    return {"y": x * FACTOR}
"""


@pytest.fixture
async def watching(tmp_path: Path) -> AsyncIterator[Watching]:
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "flow.py").write_text(TASKS.replace("FACTOR", "2"))
    (tmp_path / "test_inputs.json").write_text('{"n": 5}')
    command = [sys.executable, "-m", "app", "watch", "flow.yaml"]
    command += ["--tasks-file", "flow.py", "--test-inputs", "test_inputs.json"]
    async with watching_process(command, tmp_path, {"PYTHONPATH": str(REPO)}) as watch:
        yield watch


async def test_watch_runs_on_start_and_after_each_save(tmp_path: Path, watching: Watching) -> None:
    mark = await watching.shows("run 1", "✓ scale", "3/3", '"scaled": 10', "watching")
    assert re.search(r"✓ scale +completed +\d+ms", watching.output), watching.output

    # The task module is imported afresh: its new code runs.
    (tmp_path / "flow.py").write_text(TASKS.replace("FACTOR", "3"))
    mark = await watching.shows("saved flow.py", "~ scaled: 10 → 15", after=mark)

    # A broken save of the flow: its problems with line and column, and watching goes on.
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW.replace("inputs: {x:", "inputz: {x:"))
    mark = await watching.shows(
        "saved flow.yaml", "flow.yaml:7:5: steps[0].inputz: unknown field 'inputz'", after=mark
    )

    # The fix, with an output more, saved as many editors do (a new file renamed over the
    # old one): it runs again, and says what changed.
    (tmp_path / "flow.yaml.new").write_text(FLOW + "  n: ${inputs.n}\n")
    (tmp_path / "flow.yaml.new").replace(flow)
    mark = await watching.shows("saved flow.yaml", "completed", "+ n: 5", after=mark)

    # The inputs file is watched too.
    (tmp_path / "test_inputs.json").write_text('{"n": 7}')
    mark = await watching.shows(
        "saved test_inputs.json", "~ scaled: 15 → 21", "~ n: 5 → 7", after=mark
    )

    # A task module that no longer imports: said, and watching goes on.
    (tmp_path / "flow.py").write_text(TASKS + "def broken(:\n")
    mark = await watching.shows("saved flow.py", "error: task module", "SyntaxError", after=mark)
    (tmp_path / "flow.py").write_text(TASKS.replace("FACTOR", "2"))
    mark = await watching.shows("saved flow.py", "~ scaled: 21 → 14", after=mark)

    # Ctrl+C ends it cleanly.
    watching.process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(watching.process.wait(), DEADLINE) == 0
    assert "Traceback" not in watching.output


async def test_a_failing_run_shows_the_failed_step(tmp_path: Path, watching: Watching) -> None:
    mark = await watching.shows("run 1", '"scaled": 10')

    (tmp_path / "flow.py").write_text(TASKS.replace("x * FACTOR", "x / 0"))

    await watching.shows(
        "saved flow.py", "✗ scale", "failed at step 'scale': ZeroDivisionError", after=mark
    )


def session(flow: Path, *tasks: str) -> WatchSession:
    arguments = argparse.Namespace(file=flow, tasks=list(tasks), test_inputs=None, inputs=None)
    return WatchSession(arguments, Console(file=StringIO(), width=200, record=True))


def test_a_dotted_task_module_is_imported_afresh_on_each_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"watched_tasks_{uuid.uuid4().hex[:8]}"
    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / f"{module}.py"
    source.write_text(TASKS.replace("FACTOR", "2"))
    flow = tmp_path / "scale.yaml"
    flow.write_text(FLOW)
    watch = session(flow, module)
    watch.arguments.inputs = '{"n": 1}'

    try:
        watch.run_once("start")
        source.write_text(TASKS.replace("FACTOR", "5"))
        watch.run_once("saved")
    finally:
        sys.modules.pop(module, None)

    assert "~ scaled: 2 → 5" in watch.console.export_text()
    assert source.resolve() in watch.watched_files()


def test_the_files_watched_by_default(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    watch = session(flow)
    watch.arguments.test_inputs = tmp_path / "inputs.json"

    assert set(watch.watched_files()) == {
        flow.resolve(),
        (tmp_path / "flow.py").resolve(),  # the default task module, even before it exists
        (tmp_path / ".env").resolve(),
        (tmp_path / "inputs.json").resolve(),
    }

"""`python -m app run`'s progress: a live line per step on a terminal, with a bar for a
fan-out; the outputs alone, as JSON, when piped or with `--json`."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from app.cli.progress import StepProgress, execute_with_progress
from app.domain.runs import TaskKey, TaskStatus
from app.engine import FlowExecutor
from app.errors import FlowFailedError

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello.yaml"
HELLO_INPUTS = '{"name": "Ada", "languages": ["en", "fr", "de"]}'
HELLO_OUTPUTS = {"greetings": ["Hello, Ada!", "Bonjour, Ada!", "Hallo, Ada!"], "count": 3}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal() -> Console:
    return Console(file=StringIO(), force_terminal=True, width=100, record=True)


def log_file() -> Console:
    """Not a terminal: the steps are drawn once, as the run ended (a terminal's frames are
    checked through a pty above)."""
    return Console(file=StringIO(), force_terminal=False, width=100, record=True)


def lines_of(console: Console) -> list[str]:
    return [" ".join(line.split()) for line in console.export_text().splitlines()]


def run_app(*arguments: str, on_a_terminal: bool) -> tuple[int, str]:
    """`python -m app ARGUMENTS`: its exit status and what it wrote to its stdout, a pty's
    (so that it sees a terminal) or a pipe's."""
    command = [sys.executable, "-m", "app", *arguments]
    environment = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    if not on_a_terminal:
        done = subprocess.run(
            command, cwd=REPO, env=environment, capture_output=True, timeout=60, check=False
        )
        return done.returncode, done.stdout.decode()
    reader, writer = pty.openpty()
    process = subprocess.Popen(
        command, cwd=REPO, env=environment, stdout=writer, stderr=subprocess.DEVNULL
    )
    os.close(writer)
    chunks = []
    while True:
        try:
            chunk = os.read(reader, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(reader)
    return process.wait(timeout=60), b"".join(chunks).decode().replace("\r\n", "\n")


def test_on_a_terminal_each_step_shows_its_status_and_the_outputs_follow() -> None:
    code, out = run_app("run", str(HELLO), "--inputs", HELLO_INPUTS, on_a_terminal=True)

    assert code == 0
    text = ANSI.sub("", out)
    for step in ("words", "greet", "announce"):
        assert re.search(rf"✓ {step} +completed +\d+ms", text), text
    assert re.search(r"greet +completed +\d+ms ━+ 3/3", text), text
    assert json.loads(text[text.index("{") :]) == HELLO_OUTPUTS


@pytest.mark.parametrize(
    ("arguments", "on_a_terminal"),
    [(["--json"], True), ([], False), (["--json"], False)],
    ids=["--json on a terminal", "piped", "--json piped"],
)
def test_json_alone_when_piped_or_asked_for(arguments: list[str], on_a_terminal: bool) -> None:
    code, out = run_app(
        "run", str(HELLO), "--inputs", HELLO_INPUTS, *arguments, on_a_terminal=on_a_terminal
    )

    assert code == 0
    assert "\x1b" not in out
    assert json.loads(out) == HELLO_OUTPUTS


def test_exit_statuses_are_kept_on_a_terminal(tmp_path: Path) -> None:
    flow = tmp_path / "fails.yaml"
    flow.write_text("flow: F\nsteps:\n  - fail: {id: boom, message: no luck}\n")

    code, out = run_app("run", str(flow), on_a_terminal=True)
    assert code == 1
    assert re.search(r"✗ boom +failed", ANSI.sub("", out))

    code, out = run_app("run", str(HELLO), "--inputs", "{}", on_a_terminal=True)
    assert code == 1
    assert "greet" not in out  # invalid inputs are refused before the run: no step is drawn


def test_a_fan_out_draws_a_bar_of_its_elements() -> None:
    console = log_file()
    executor = FlowExecutor()

    outputs = execute_with_progress(executor, HELLO.read_text(), json.loads(HELLO_INPUTS), console)

    assert outputs == HELLO_OUTPUTS
    lines = lines_of(console)
    assert any(re.fullmatch(r"✓ greet completed \d+ms ━+ 3/3", line) for line in lines), lines
    assert any(re.fullmatch(r"✓ words completed \d+ms", line) for line in lines), lines


def test_a_failed_step_and_the_steps_it_cancelled_are_shown() -> None:
    console = log_file()
    flow = """
flow: Fails
mode: dag
steps:
  - sleep: {id: slow, seconds: 30}
  - fail: {id: boom, message: no luck}
  - set: {id: after, depends_on: [boom], values: {x: 1}}
"""
    with pytest.raises(FlowFailedError, match="no luck"):
        execute_with_progress(FlowExecutor(), flow, {}, console)

    lines = lines_of(console)
    assert any(re.fullmatch(r"✗ boom failed \d+ms", line) for line in lines), lines
    assert any(re.fullmatch(r"■ slow cancelled \d+ms", line) for line in lines), lines
    assert "· after pending" in lines


def test_a_running_fan_out_shows_how_many_elements_have_settled() -> None:
    now = [100.0]
    executor = FlowExecutor()
    definition = executor.load(
        "flow: F\nsteps:\n  - set: {id: each, for_each: '${[1, 2]}', values: {x: 1}}\n"
        "  - set: {id: later, values: {y: 2}}\n"
    )
    progress = StepProgress(definition, clock=lambda: now[0])
    progress.step_started("run", "each")
    progress.elements_expanded("run", "each", 40)
    for index in range(10):
        progress.element_settled("run", TaskKey("each", index), TaskStatus.COMPLETED)
    now[0] += 2.5

    console = terminal()
    console.print(progress)

    each, later = lines_of(console)
    assert re.fullmatch(r"▶ each running 2\.50s [━╺╸]+ 10/40", each), each
    assert later == "· later pending"

"""`python -m app test FIXTURE...`: fixtures run, differences reported, exit 0 / 1 / 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main

REPO = Path(__file__).resolve().parents[2]

FLOW = """\
flow: Greeting
inputs:
  - {name: name, type: string, required: true}
steps:
  - task: LookUp
    id: lookup
    inputs: {name: "${inputs.name}"}
  - set:
      id: greet
      values: {text: "Hello, ${lookup.user.name}!"}
outputs:
  greeting: ${greet.text}
  user: ${lookup.user}
"""

# The tutorial's layout: custom tasks in flow.py beside the flow. LookUp leaves a trace of each
# execution, so a test can tell that a stubbed step did not run.
TASKS = """\
from pathlib import Path

from app.tasks import TaskError, TaskRegistry

registry = TaskRegistry()


@registry.register("LookUp")
def look_up(name: str) -> dict:
    with (Path(__file__).parent / "lookups.log").open("a") as log:
        log.write(name + "\\n")
    if name == "nobody":
        raise TaskError("User not found")
    return {"user": {"name": name.title(), "id": len(name)}}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    (tmp_path / "flow.py").write_text(TASKS, encoding="utf-8")
    return tmp_path


def fixture(directory: Path, text: str, name: str = "fixture.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def lookups(project: Path) -> list[str]:
    log = project / "lookups.log"
    return log.read_text().splitlines() if log.exists() else []


def test_a_matching_fixture_passes_with_exit_0(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fixture(
        project,
        """\
flow: flow.yaml
inputs: {name: alice}
expect:
  outputs: {greeting: "Hello, Alice!", user: {name: Alice, id: 5}}
""",
    )

    assert main(["test", str(path)]) == 0

    out = capsys.readouterr().out
    assert f"PASS  {path}" in out
    assert out.splitlines()[-1] == "1 fixture: 1 passed, 0 failed"
    assert lookups(project) == ["alice"]  # flow.py beside the flow provided the task


def test_a_mismatch_exits_1_listing_each_difference_by_path(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fixture(
        project,
        """\
flow: flow.yaml
inputs: {name: bob}
expect:
  outputs:
    greeting: "Hello, Bob!"
    user: {name: Alice, id: 3, admin: false}
    extra: [1]
""",
    )

    assert main(["test", str(path)]) == 1

    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"FAIL  {path}",
        "  outputs.user.name: expected 'Alice', got 'Bob'",
        "  outputs.user.admin: missing, expected False",
        "  outputs.extra: missing, expected [1]",
        "1 fixture: 0 passed, 1 failed",
    ]


def test_stubbed_steps_do_not_run_and_give_their_outputs(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fixture(
        project,
        """\
flow: flow.yaml
inputs: {name: nobody}    # LookUp would fail for this name
stubs:
  lookup: {user: {name: Recorded, id: 42}}
expect:
  outputs: {greeting: "Hello, Recorded!", user: {name: Recorded, id: 42}}
""",
    )

    assert main(["test", str(path)]) == 0, capsys.readouterr().out
    assert lookups(project) == []


def test_an_expected_failure_matches_its_step_and_message(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matching = fixture(
        project,
        """\
flow: flow.yaml
inputs: {name: nobody}
expect:
  failed: {step: lookup, message: not found}
""",
        "fails.yaml",
    )
    wrong = fixture(
        project,
        """\
flow: flow.yaml
inputs: {name: nobody}
expect:
  failed: {step: greet, message: timeout}
""",
        "wrong.yaml",
    )
    completes = fixture(
        project,
        """\
flow: flow.yaml
inputs: {name: ada}
expect:
  failed: {step: lookup}
""",
        "completes.yaml",
    )

    assert main(["test", str(matching), str(wrong), str(completes)]) == 1

    out = capsys.readouterr().out
    assert f"PASS  {matching}" in out
    assert f"FAIL  {wrong}" in out
    assert "  failed.step: expected 'greet', got 'lookup' (TaskError: 'User not found')" in out
    assert "  failed.message: expected to contain 'timeout', got 'User not found'" in out
    assert f"FAIL  {completes}" in out
    assert "  status: expected failed at step 'lookup', got completed with outputs" in out
    assert out.splitlines()[-1] == "3 fixtures: 1 passed, 2 failed"


def test_expected_outputs_from_a_failed_run_report_the_failure(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fixture(
        project, "flow: flow.yaml\ninputs: {name: nobody}\nexpect: {outputs: {greeting: hi}}\n"
    )

    assert main(["test", str(path)]) == 1

    assert (
        "  status: expected completed, got failed at step 'lookup' (TaskError: 'User not found')"
        in capsys.readouterr().out
    )


def test_an_inline_flow_runs_and_its_problems_point_into_the_fixture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = fixture(
        tmp_path,
        """\
flow:
  flow: Inline
  steps:
    - set: {id: one, values: {n: 1}}
  outputs: {n: "${one.n}"}
expect: {outputs: {n: 1}}
""",
        "good.yaml",
    )
    bad = fixture(
        tmp_path,
        """\
inputs: {}
flow:
  flow: Inline
  steps:
    - set: {id: one, values: {n: 1}}
    - nosuchtask: {id: two}
expect: {outputs: {}}
""",
        "bad.yaml",
    )

    assert main(["test", str(good)]) == 0
    assert main(["test", str(bad)]) == 2

    out = capsys.readouterr().out
    assert f"  {bad}:6:7: flow.steps[1]" in out


def test_invalid_fixtures_exit_2_naming_the_bad_field_and_its_place(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fixture(
        project,
        """\
flow: flow.yaml
inputs: [alice]
stubs:
  lookup: 3
expect:
  failed: {step: 7}
colour: blue
""",
    )
    passing = fixture(
        project,
        "flow: flow.yaml\ninputs: {name: a}\nexpect: {outputs: {greeting: 'Hello, A!', "
        "user: {name: A, id: 1}}}\n",
        "passing.yaml",
    )

    assert main(["test", str(path), str(passing)]) == 2  # every fixture still runs

    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"ERROR {path}",
        f"  {path}:2:1: inputs: a mapping, not a list",
        f"  {path}:4:3: stubs.lookup: the step's outputs, a mapping, not a number",
        f"  {path}:6:12: expect.failed.step: a step id, not a number",
        f"  {path}:7:1: colour: unknown field; a fixture's fields are flow, inputs, stubs, "
        "expect, tasks",
        f"PASS  {passing}",
        "2 fixtures: 1 passed, 0 failed, 1 could not run",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("flow: missing.yaml\nexpect: {outputs: {}}\n", "1:1: flow: cannot read the flow"),
        ("flow: flow.yaml\nexpect: {outputs: {}}\n", "inputs.name: missing required input"),
        (
            "flow: flow.yaml\ninputs: {name: a}\nstubs: {nope: {}}\nexpect: {outputs: {}}\n",
            "3:9: stubs.nope: the flow has no step 'nope'",
        ),
        ("flow: flow.yaml\ninputs: {name: a}\n", "expect: missing"),
        ("flow: flow.yaml\nexpect: {outputs: {}, failed: {step: a}}\n", "expect: one of"),
        ("flow: flow.yaml\ntasks: [nosuch_module_here]\nexpect: {outputs: {}}\n", "tasks:"),
        ("flow: [\n", "yaml"),
    ],
)
def test_usage_errors_exit_2(
    project: Path, text: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fixture(project, text)

    assert main(["test", str(path)]) == 2

    out = capsys.readouterr().out
    assert out.startswith(f"ERROR {path}\n")
    assert expected in out


def test_a_flow_file_problem_points_into_the_flow_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "flow.yaml").write_text(FLOW.replace("task: LookUp", "task: Missing"))
    path = fixture(project, "flow: flow.yaml\ninputs: {name: a}\nexpect: {outputs: {}}\n")

    assert main(["test", str(path)]) == 2

    assert f"  {project / 'flow.yaml'}:5:" in capsys.readouterr().out


def test_python_dash_m_app_test_exits_with_the_fixtures_verdict(project: Path) -> None:
    path = fixture(project, "flow: flow.yaml\ninputs: {name: a}\nexpect: {outputs: {}}\n")

    done = subprocess.run(
        [sys.executable, "-m", "app", "test", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    no_fixture = subprocess.run(
        [sys.executable, "-m", "app", "test"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "outputs.greeting: not expected, got 'Hello, A!'" in done.stdout
    assert no_fixture.returncode == 2


def test_the_readme_example_fixture_passes(capsys: pytest.CaptureFixture[str]) -> None:
    example = REPO / "examples" / "fixtures" / "hello.yaml"

    assert main(["test", str(example)]) == 0, capsys.readouterr().out

"""`python -m app`: run, validate and connections, with their exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from app.settings import get_settings

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello.yaml"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_run_prints_the_outputs_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(HELLO), "--inputs", '{"name": "Ada", "languages": ["en", "de"]}'])

    assert code == 0
    assert json.loads(capsys.readouterr().out) == {
        "greetings": ["Hello, Ada!", "Hallo, Ada!"],
        "count": 2,
    }


def test_inputs_can_come_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = write(tmp_path, "inputs.json", '{"name": "Bo"}')

    assert main(["run", str(HELLO), "--inputs", f"@{inputs}"]) == 0
    assert json.loads(capsys.readouterr().out)["greetings"] == ["Hello, Bo!", "Bonjour, Bo!"]


def test_failed_run_exits_1_with_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = write(tmp_path, "f.yaml", "flow: F\nsteps:\n  - fail: {id: boom, message: no luck}\n")

    assert main(["run", str(flow)]) == 1
    assert "failed at step 'boom': TaskError: no luck" in capsys.readouterr().err


def test_bad_inputs_exit_1_naming_each_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(HELLO), "--inputs", '{"languages": "en"}']) == 1

    err = capsys.readouterr().err
    assert "inputs.name: missing required input 'name'" in err
    assert "inputs.languages: input 'languages' must be an array" in err


@pytest.mark.parametrize(
    "arguments",
    [
        ["run", "no/such/flow.yaml"],
        ["run", str(HELLO), "--inputs", "{not json"],
        ["run", str(HELLO), "--inputs", "[1, 2]"],
        ["run", str(HELLO), "--tasks", "no_such_module_anywhere"],
    ],
)
def test_usage_errors_exit_2(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(arguments) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_validate_accepts_a_valid_flow(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(HELLO)]) == 0
    assert "valid flow 'Hello' with 3 steps" in capsys.readouterr().out


def test_validate_prints_every_problem_with_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = write(
        tmp_path,
        "bad.yaml",
        "flow: Bad\nsteps:\n  - set: {id: a, values: {x: 1}}\n  - sett: {id: b}\n"
        "  - set: {id: c, values: {y: '${a.nope}'}}\n",
    )

    assert main(["validate", str(flow)]) == 1

    lines = capsys.readouterr().out.splitlines()
    assert any(
        line.startswith(f"{flow}:4:5: steps[1].sett: unknown task type 'sett'") for line in lines
    )
    assert any(line.startswith(f"{flow}:5:") and "has no output 'nope'" in line for line in lines)


def test_validate_refuses_a_value_spliced_into_sql_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = write(
        tmp_path,
        "sql.yaml",
        "flow: Sql\nconnections: {db: {type: postgres, url: u}}\ninputs: {p: string}\n"
        "steps:\n  - pg_query: {id: q, connection: db, query: \"SELECT '${inputs.p}'\"}\n",
    )

    assert main(["validate", str(flow)]) == 1

    out = capsys.readouterr().out
    assert f"{flow}:5:39: steps[0].pg_query.query: `query` is SQL text" in out
    assert "params: [${inputs.id}]" in out


def test_validate_refuses_a_duration_past_its_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = write(
        tmp_path,
        "slow.yaml",
        "flow: Slow\nsteps:\n  - log: {id: s, message: hi, timeout: 120, retry: {delay: 1e9}}\n",
    )
    monkeypatch.setenv("MAX_STEP_TIMEOUT_SECONDS", "60")
    get_settings.cache_clear()
    try:
        assert main(["validate", str(flow)]) == 1
    finally:
        get_settings.cache_clear()

    out = capsys.readouterr().out
    assert (
        f"{flow}:3:31: steps[0].log.timeout: must be at most 60 seconds "
        "(setting MAX_STEP_TIMEOUT_SECONDS), not 120"
    ) in out
    assert (
        f"{flow}:3:53: steps[0].log.retry.delay: must be at most 86,400 seconds "
        "(setting MAX_RETRY_DELAY_SECONDS), not 1e+09"
    ) in out


def test_validate_uses_flow_py_beside_the_file_for_custom_tasks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", str(REPO / "examples" / "tutorial" / "flow.yaml")]) == 0


def test_tasks_option_loads_a_module_by_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = write(
        tmp_path,
        "my_tasks.py",
        "from app.tasks import TaskRegistry\nregistry = TaskRegistry()\n\n"
        "@registry.register('Shout')\ndef shout(text: str) -> dict:\n"
        "    return {'text': text.upper()}\n",
    )
    flow = write(
        tmp_path,
        "shout.yaml",
        "flow: S\nsteps:\n  - task: Shout\n    id: s\n    inputs: {text: hey}\n"
        "outputs: {text: '${s.text}'}\n",
    )

    assert main(["run", str(flow), "--tasks", str(tasks)]) == 0
    assert json.loads(capsys.readouterr().out) == {"text": "HEY"}


def test_connections_lists_the_plugins_and_their_drivers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["connections"]) == 0

    out = capsys.readouterr().out
    for plugin, driver in (("postgres", "asyncpg"), ("redis", "redis"), ("http", "httpx")):
        assert any(
            line.startswith("✅") and plugin in line and driver in line for line in out.splitlines()
        )


def test_python_dash_m_app_reports_exit_codes() -> None:
    def run(*arguments: str) -> int:
        done = subprocess.run(
            [sys.executable, "-m", "app", *arguments],
            cwd=REPO,
            capture_output=True,
            timeout=60,
            check=False,
        )
        return done.returncode

    assert run("validate", str(HELLO)) == 0
    assert run("run", "missing.yaml") == 2
    assert run("frobnicate") == 2


def test_a_standalone_worker_is_refused_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'flows.db'}")
    get_settings.cache_clear()
    try:
        assert main(["worker"]) == 2
    finally:
        get_settings.cache_clear()

    assert "SQLite is single-process" in capsys.readouterr().err

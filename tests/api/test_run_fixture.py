"""`GET /runs/{id}/fixture`: a past run as a fixture that `python -m app test` replays offline."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.settings import Settings
from app.testing import check_fixture
from tests.api.flows import FAILING_YAML, SLOW_YAML
from tests.api.support import ROOT, As, add_user, auth_settings, poll_run
from tests.api.tasks import executions

TASKS = str(Path(__file__).with_name("tasks.py"))
REPLAYED_YAML = """\
flow: Replayed
inputs:
  - {name: directory, type: string, required: true}
  - {name: names, type: array, default: [ada, bob]}
steps:
  - task: RecordExecution
    id: record
    inputs: {directory: "${inputs.directory}", name: record}
  - set:
      id: each
      for_each: ${inputs.names}
      as: name
      values: {text: "${name}:${record.count}"}
  - set: {id: summary, values: {count: "${len(each.text)}"}}
outputs:
  texts: ${each.text}
  count: ${summary.count}
"""


@pytest.fixture
def settings(database_url: str) -> Settings:
    return auth_settings(database_url)


@pytest.fixture
async def ada(admin: As) -> As:
    return await add_user(admin, "ada")


async def execute(caller: As, flow: str, inputs: dict[str, object]) -> str:
    response = await caller.post(f"/flows/{flow}/execute", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def replay(fixture: Path) -> subprocess.CompletedProcess[str]:
    """`python -m app test`, in a process of its own: no service, no store, the fixture alone."""
    return subprocess.run(
        [sys.executable, "-m", "app", "test", str(fixture), "--tasks", TASKS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_run_fetched_as_a_fixture_replays_offline(ada: As, tmp_path: Path) -> None:
    await ada.register(REPLAYED_YAML)
    run_id = await execute(ada, "Replayed", {"directory": str(tmp_path)})

    response = await ada.get(f"/runs/{run_id}/fixture", params={"stub": "record"})
    fixture = tmp_path / "replayed.yaml"
    fixture.write_text(response.text, encoding="utf-8")
    done = await asyncio.to_thread(replay, fixture)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(response.text) == {
        "flow": REPLAYED_YAML,  # as registered, inline
        "inputs": {"directory": str(tmp_path), "names": ["ada", "bob"]},
        "stubs": {"record": {"count": 1}},
        "expect": {"outputs": {"texts": ["ada:1", "bob:1"], "count": 2}},
    }
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [f"PASS  {fixture}", "1 fixture: 1 passed, 0 failed"]
    assert executions(tmp_path, "record") == 1  # the stubbed step did not run again


async def test_without_stubs_every_step_runs_again_and_differences_show(
    ada: As, tmp_path: Path
) -> None:
    await ada.register(REPLAYED_YAML)
    run_id = await execute(ada, "Replayed", {"directory": str(tmp_path)})

    fixture = tmp_path / "rerun.yaml"
    fixture.write_text((await ada.get(f"/runs/{run_id}/fixture")).text, encoding="utf-8")
    done = await asyncio.to_thread(replay, fixture)

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"FAIL  {fixture}",
        "  outputs.texts[0]: expected 'ada:1', got 'ada:2'",
        "  outputs.texts[1]: expected 'bob:1', got 'bob:2'",
        "1 fixture: 0 passed, 1 failed",
    ]


async def test_a_fan_out_is_stubbed_with_its_collected_outputs_in_json(
    ada: As, tmp_path: Path
) -> None:
    await ada.register(REPLAYED_YAML)
    run_id = await execute(ada, "Replayed", {"directory": str(tmp_path), "names": ["x", "y"]})

    response = await ada.get(
        f"/runs/{run_id}/fixture", params={"stub": ["each", "record"], "format": "json"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["stubs"] == {"each": {"text": ["x:1", "y:1"]}, "record": {"count": 1}}


async def test_a_failed_run_expects_its_failed_step(ada: As, tmp_path: Path) -> None:
    await ada.register(FAILING_YAML)
    run_id = await execute(ada, "Failing", {"reason": "late"})

    response = await ada.get(f"/runs/{run_id}/fixture", params={"format": "json"})
    fixture = tmp_path / "failing.yaml"
    fixture.write_text(json.dumps(response.json()), encoding="utf-8")  # JSON is YAML too
    result = await check_fixture(fixture)

    assert response.json()["expect"] == {"failed": {"step": "explode"}}
    assert result.passed, result.report()
    assert result.error is not None
    assert result.error.message == "it is late"


async def test_a_run_the_caller_may_not_see_answers_404(ada: As, admin: As) -> None:
    bob = await add_user(admin, "bob")
    await ada.register(FAILING_YAML)
    run_id = await execute(ada, "Failing", {})

    assert (await bob.get(f"/runs/{run_id}/fixture")).status_code == 404
    unknown = "00000000-0000-4000-8000-000000000000"
    assert (await ada.get(f"/runs/{unknown}/fixture")).status_code == 404
    assert (await As(ada.client).get(f"/runs/{run_id}/fixture")).status_code == 401
    assert (await ada.get(f"/runs/{run_id}/fixture")).status_code == 200


async def test_unfinished_runs_and_steps_without_outputs_are_refused(ada: As) -> None:
    await ada.register(FAILING_YAML)
    await ada.register(SLOW_YAML)
    failed = await execute(ada, "Failing", {})
    started = await ada.post("/flows/Slow/runs", json={})
    slow = started.json()["run_id"]
    await poll_run(ada.client, slow, until=("running",), step="nap", headers=ada.auth)

    running = await ada.get(f"/runs/{slow}/fixture")
    not_run = await ada.get(f"/runs/{failed}/fixture", params={"stub": "after"})
    unknown = await ada.get(f"/runs/{failed}/fixture", params={"stub": "nope"})
    await ada.post(f"/runs/{slow}/cancel")

    assert running.status_code == 409
    assert "only a completed or failed run" in running.json()["detail"]
    assert not_run.status_code == 422
    assert "step 'after' did not complete" in not_run.text
    assert unknown.status_code == 422
    assert "flow has no step 'nope'" in unknown.text

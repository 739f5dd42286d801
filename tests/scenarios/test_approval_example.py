"""`examples/approval`: a flow waits for a person's yes or no, as its README shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.support import api_settings, poll_run, register, serve, step_status

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "approval" / "approval.yaml"


@pytest.mark.parametrize(
    ("answer", "outputs", "logged"),
    [
        ({"approved": True, "by": "grace"}, {"approved": True, "timed_out": False}, "refund"),
        ({"approved": False, "by": "grace"}, {"approved": False, "timed_out": False}, "refused"),
    ],
)
async def test_the_approval_example_goes_the_way_the_answer_says(
    tmp_path: Path, answer: dict[str, Any], outputs: dict[str, bool], logged: str
) -> None:
    settings = api_settings(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    async with serve(settings) as client:
        await register(client, EXAMPLE.read_bytes())
        started = await client.post("/flows/Approval/runs", json={"inputs": {"amount": 120}})
        run_id = started.json()["run_id"]
        await poll_run(client, run_id, until=("running",), step="decision")

        sent = await client.post(f"/runs/{run_id}/signals/decision", json=answer)
        run = await poll_run(client, run_id)

    assert sent.status_code == 202
    assert (run["status"], run["outputs"]) == ("completed", outputs)
    assert step_status(run, logged) == "completed"
    other = "refused" if logged == "refund" else "refund"
    assert step_status(run, other) == "skipped"

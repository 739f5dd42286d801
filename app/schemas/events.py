"""Server-sent events of a run (GET /runs/{id}/events), as the wire carries them.

Each event is `id: <event id>` and one `data:` line of JSON: `{run_id, type: "run"|"step",
status, step_id?, task_index?, attempt?, outputs?, error?, at}` (DESIGN.md section 8). A
completed step's or run's `outputs` are sized like any answer's values (`AnswerBudget`, one
budget per event): past the limits, the usual marker points at the route that answers them
whole.
"""

from __future__ import annotations

from typing import Any

from app.domain.records import STEP_EVENT, RunEvent
from app.schemas.answers import AnswerBudget, json_bytes

MEDIA_TYPE = "text/event-stream"
KEEP_ALIVE = b": keep-alive\n\n"
# Sent first: how long a browser waits before it reconnects (with Last-Event-ID).
RECONNECT = b"retry: 1000\n\n"


def event_data(event: RunEvent, budget: AnswerBudget) -> dict[str, Any]:
    data: dict[str, Any] = {"run_id": event.run_id, "type": event.type, "status": event.status}
    if event.type == STEP_EVENT:
        data["step_id"] = event.step_id
        data["task_index"] = event.task_index
        if event.attempt:  # none yet (0) before the task's first attempt
            data["attempt"] = event.attempt
    if event.outputs is not None:
        data["outputs"] = budget.fit(event.outputs, _href(event))
    if event.error is not None:
        data["error"] = event.error.as_dict()
    data["at"] = event.at.isoformat()
    return data


def sse_message(event: RunEvent, budget: AnswerBudget) -> bytes:
    """The event as one SSE message (JSON holds no raw newline: one `data:` line)."""
    return b"id: %d\ndata: %s\n\n" % (event.id, json_bytes(event_data(event, budget)))


def _href(event: RunEvent) -> str:
    if event.type == STEP_EVENT:
        return f"/runs/{event.run_id}/steps/{event.step_id}/outputs?task_index={event.task_index}"
    return f"/runs/{event.run_id}/outputs"

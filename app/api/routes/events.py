"""GET /runs/{id}/events: a run's live events, as server-sent events (DESIGN.md section 8).

The route parses `Last-Event-ID`, opens the stream (`EventService.open`: authorization, the
snapshot, the hub) before answering, so a refused or unknown run is an ordinary error answer,
and writes the events, a keep-alive comment whenever nothing was sent for
EVENTS_KEEPALIVE_SECONDS. The stream closes after the run's terminal event, or when its client
fell too far behind (it reconnects with Last-Event-ID).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.api.deps import RunId, RunsReader, ServicesDep, SettingsDep
from app.schemas.answers import AnswerBudget
from app.schemas.common import error_responses
from app.schemas.events import KEEP_ALIVE, MEDIA_TYPE, RECONNECT, sse_message
from app.services.events import EventService, EventStream
from app.settings import Settings

router = APIRouter(tags=["runs"])


async def get_events(services: ServicesDep) -> EventService:
    return services.events


EventsDep = Annotated[EventService, Depends(get_events)]
LastEventId = Annotated[
    int | None,
    Header(
        alias="Last-Event-ID",
        ge=0,
        le=2**63 - 1,
        description="resume after this event: only later events, no snapshot",
    ),
]

STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events: `id` and `data` JSON `{run_id, type, status, "
        "step_id?, task_index?, attempt?, outputs?, error?, at}`",
        # Each event, as an SSE parser reads it (`data` is the JSON text above).
        "content": {
            MEDIA_TYPE: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "pattern": "^[0-9]+$"},
                        "data": {"type": "string", "contentMediaType": "application/json"},
                        "event": {"type": "string"},
                        "retry": {"type": "integer"},
                    },
                }
            }
        },
    }
}


@router.get(
    "/runs/{run_id}/events",
    summary="Follow a run live (server-sent events)",
    description="First the run's state (one `run` event, one `step` event per task), then "
    "every transition as it happens, from whichever process runs the run; the stream ends "
    "after the run's terminal event. Reconnect with `Last-Event-ID` to get only later events.",
    response_class=StreamingResponse,
    responses={**STREAM, **error_responses(401, 403, 404, 422, 429)},
)
async def run_events(
    caller: RunsReader,
    run_id: RunId,
    events: EventsDep,
    settings: SettingsDep,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    stream = await events.open(caller, str(run_id), last_event_id)
    keepalive = events.limits.keepalive_seconds
    return EventResponse(stream, _written(stream, settings, keepalive))


class EventResponse(StreamingResponse):
    """The stream's answer, which closes the stream however it ends: also when the client
    left before the first byte (its generator then never runs its `finally`)."""

    def __init__(self, stream: EventStream, content: AsyncIterator[bytes]) -> None:
        super().__init__(
            content,
            media_type=MEDIA_TYPE,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.stream.close()


async def _written(
    stream: EventStream, settings: Settings, keepalive: float
) -> AsyncIterator[bytes]:
    try:
        yield RECONNECT
        while not stream.done:
            event = await stream.next(keepalive)
            if event is not None:
                yield sse_message(event, AnswerBudget.for_answer(settings))  # one per event
            elif not stream.done:
                yield KEEP_ALIVE
    finally:
        stream.close()

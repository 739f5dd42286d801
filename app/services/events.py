"""Live run events (GET /runs/{id}/events): a run's current state, then every transition.

A stream starts with a snapshot of the run (one `run` event and one `step` event per task, as
of the run's latest event, whose id they carry), unless the client resumes with the id of the
last event it received: then it gets exactly the events after that one. The rest comes from
the process's `EventHub`. The run's terminal event is the stream's last: a finished run's
snapshot ends with it, and a live stream closes after it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime

from app.domain.access import Caller
from app.domain.records import RUN_EVENT, STEP_EVENT, RunEvent, RunRecord, StepRecord
from app.errors import RateLimitedError, UnknownRunError
from app.services.event_hub import BATCH, EventHub, EventLimits, Subscriber
from app.services.ports import RunEvents
from app.services.runs import RunService

ReadAfter = Callable[[int, int], Awaitable[list[RunEvent]]]  # (after id, limit) -> events


class EventStream:
    """One client's events of one run, in order, each once.

    First `initial` (a snapshot), then the store's events after `after`: read from the store
    up to where the hub's watch was when the stream joined it (`Subscriber.joined_at`), then
    the watch's. Without a subscriber (the run had finished) the store's alone.
    """

    def __init__(
        self,
        initial: list[RunEvent],
        after: int,
        read: ReadAfter,
        subscriber: Subscriber | None,
        on_close: Callable[[], None],
    ) -> None:
        self._ready = deque(initial)
        self._last = after
        self._read = read
        self._subscriber = subscriber
        self._catch_up_to = None if subscriber is None else subscriber.joined_at
        self._catching_up = subscriber is None or subscriber.joined_at > after
        self._on_close = on_close
        self.done = False  # the stream has given its last event

    @property
    def cut_off(self) -> bool:
        """Whether the stream ended because its client fell too far behind."""
        return self._subscriber is not None and self._subscriber.cut_off

    async def next(self, wait_seconds: float) -> RunEvent | None:
        """The next event; None when none came within `wait_seconds` (the caller keeps the
        connection alive) or, with `done`, when the stream is over."""
        while not self.done:
            if self._ready:
                return self._give(self._ready.popleft())
            if self._catching_up:
                await self._catch_up()
                continue
            if self._subscriber is None:
                self.done = True
                break
            event = await self._subscriber.next(wait_seconds)
            if event is None:
                if self._subscriber.ended and not self._subscriber.events:
                    self.done = True
                return None
            if event.id > self._last:
                return self._give(event)
        return None

    def _give(self, event: RunEvent) -> RunEvent:
        self._last = max(self._last, event.id)
        if event.ends_run:
            self.done = True
        return event

    async def _catch_up(self) -> None:
        found = await self._read(self._last, BATCH)
        limit = self._catch_up_to
        self._ready.extend(event for event in found if limit is None or event.id <= limit)
        if len(found) < BATCH or (limit is not None and found[-1].id >= limit):
            self._catching_up = False

    def close(self) -> None:
        """Leave the hub and free the caller's stream; again does nothing."""
        self.done = True
        on_close, self._on_close = self._on_close, _nothing
        on_close()


class EventService:
    def __init__(
        self, runs: RunService, source: RunEvents, hub: EventHub, limits: EventLimits
    ) -> None:
        self.runs = runs
        self.source = source
        self.hub = hub
        self.limits = limits
        self._open: dict[str, int] = {}  # streams open per caller

    async def open(self, caller: Caller, run_id: str, last_event_id: int | None) -> EventStream:
        """A stream of the run's events, when the caller may see its flow (else
        UnknownRunError); RateLimitedError past EVENTS_STREAMS_PER_CALLER open streams."""
        run = await self.runs.read(caller, run_id, with_steps=False)
        key = caller.user_id or caller.username
        if self._open.get(key, 0) >= self.limits.streams_per_caller:
            raise RateLimitedError(
                f"{self.limits.streams_per_caller} event streams are open already for this "
                "caller (setting EVENTS_STREAMS_PER_CALLER); close one",
                retry_after=self.limits.keepalive_seconds,
            )
        initial: list[RunEvent] = []
        if last_event_id is None:
            found = await self.source.watch(run_id)
            if found is None:
                raise UnknownRunError(f"no run has the id {run_id!r}")
            run, after = found
            initial = snapshot_events(run, after)
        else:
            after = last_event_id
        subscriber = None if run.finished else self.hub.join(run_id, after)
        self._open[key] = self._open.get(key, 0) + 1

        def closed() -> None:
            if subscriber is not None:
                self.hub.leave(subscriber)
            left = self._open.get(key, 1) - 1
            if left:
                self._open[key] = left
            else:
                self._open.pop(key, None)

        async def read(after_id: int, limit: int) -> list[RunEvent]:
            return await self.source.events_after(run_id, after_id, limit, self.limits.value_limit)

        if run.finished and last_event_id is None:  # the snapshot says it all
            return EventStream(initial, after, _nothing_after, None, closed)
        return EventStream(initial, after, read, subscriber, closed)

    async def aclose(self) -> None:
        await self.hub.aclose()


def _nothing() -> None:
    pass


async def _nothing_after(_after: int, _limit: int) -> list[RunEvent]:
    return []


def snapshot_events(run: RunRecord, last_id: int) -> list[RunEvent]:
    """The run's state as events, all with the id of the run's latest event: one per task,
    and the run's own first, or last when it finished (a terminal event ends a stream)."""
    steps = [_step_event(run.run_id, step, last_id, run.created_at) for step in run.steps]
    at = run.finished_at or run.started_at or run.created_at
    own = RunEvent(
        id=last_id,
        run_id=run.run_id,
        type=RUN_EVENT,
        status=run.status.value,
        at=at,
        outputs=run.outputs if run.finished else None,
        error=run.error,
    )
    return [*steps, own] if run.finished else [own, *steps]


def _step_event(run_id: str, step: StepRecord, last_id: int, created_at: datetime) -> RunEvent:
    return RunEvent(
        id=last_id,
        run_id=run_id,
        type=STEP_EVENT,
        status=step.status.value,
        at=step.finished_at or step.started_at or step.available_at or created_at,
        step_id=step.step_id,
        task_index=step.task_index,
        attempt=step.attempts or None,
        outputs=step.outputs,
        error=step.error,
    )

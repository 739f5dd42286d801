"""The process's hub of run events and its streams, on a source of events in memory: one read
per wake-up whoever listens, resumption without loss or repetition, a slow stream cut off
without slowing anyone, the end after the run's terminal event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.records import RUN_EVENT, STEP_EVENT, RunEvent, RunRecord
from app.services.event_hub import EventHub, EventLimits
from app.services.events import EventStream
from tests.polling import until

AT = datetime(2026, 12, 1, tzinfo=UTC)
RUN = "run-1"


class Events:
    """A store's events of one run, appended by the test."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []
        self.reads = 0

    def add(self, status: str = "running", *, ends: bool = False) -> RunEvent:
        kind = RUN_EVENT if ends else STEP_EVENT
        event = RunEvent(
            id=len(self.events) + 1,
            run_id=RUN,
            type=kind,
            status="completed" if ends else status,
            at=AT,
            step_id=None if ends else "step",
            task_index=None if ends else 0,
        )
        self.events.append(event)
        return event

    async def watch(self, run_id: str) -> tuple[RunRecord, int] | None:
        raise AssertionError("not used")

    async def events_after(
        self, run_id: str, after: int, limit: int, value_limit: int
    ) -> list[RunEvent]:
        self.reads += 1
        return [event for event in self.events if event.id > after][:limit]


def limits(buffer: int = 100) -> EventLimits:
    return EventLimits(
        buffer=buffer,
        keepalive_seconds=15,
        streams_per_caller=10,
        poll_seconds=30,  # the tests wake the hub themselves
        value_limit=1 << 20,
    )


def stream(hub: EventHub, source: Events, after: int) -> EventStream:
    async def read(after_id: int, limit: int) -> list[RunEvent]:
        return await source.events_after(RUN, after_id, limit, 0)

    return EventStream([], after, read, hub.join(RUN, after), lambda: None)


async def received(events: EventStream, count: int) -> list[int]:
    ids: list[int] = []
    while len(ids) < count:
        event = await events.next(1)
        assert event is not None, f"only {ids}"
        ids.append(event.id)
    return ids


@pytest.fixture
def source() -> Events:
    return Events()


async def test_streams_get_every_event_once_in_order_and_end_after_the_terminal_one(
    source: Events,
) -> None:
    hub = EventHub(source, limits())
    first, second = stream(hub, source, 0), stream(hub, source, 0)
    source.add("queued")
    source.add("running")
    hub.wake(RUN)
    assert await received(first, 2) == [1, 2]
    source.add("completed")
    source.add(ends=True)
    hub.notified(RUN)
    assert await received(first, 2) == [3, 4]
    assert await received(second, 4) == [1, 2, 3, 4]
    assert first.done
    assert second.done
    await until(lambda: hub.watched == 0)
    await hub.aclose()


async def test_a_stream_joining_a_watch_further_on_catches_up_from_the_store(
    source: Events,
) -> None:
    hub = EventHub(source, limits())
    early = stream(hub, source, 0)
    for _ in range(3):
        source.add()
    hub.wake(RUN)
    assert await received(early, 3) == [1, 2, 3]
    late = stream(hub, source, 1)  # resumes after event 1; the watch is at 3
    ahead = stream(hub, source, 5)  # resumes after 5 (the watch is behind it)
    for _ in range(3):
        source.add()
    hub.wake(RUN)
    assert await received(late, 5) == [2, 3, 4, 5, 6]
    assert await received(ahead, 1) == [6]
    await hub.aclose()


async def test_a_stream_that_falls_behind_is_cut_off_and_the_others_go_on(
    source: Events,
) -> None:
    hub = EventHub(source, limits(buffer=3))
    slow, fast = stream(hub, source, 0), stream(hub, source, 0)
    for round_ in range(3):
        for _ in range(2):
            source.add()
        hub.wake(RUN)
        assert await received(fast, 2) == [2 * round_ + 1, 2 * round_ + 2]
    # The slow stream read nothing: cut off at its fourth event, it still gives the three it
    # holds, then ends (its client resumes with the last id it got).
    assert await received(slow, 3) == [1, 2, 3]
    assert await slow.next(0.1) is None
    assert slow.done
    assert slow.cut_off
    assert not fast.done
    await hub.aclose()


async def test_one_read_per_wake_up_however_many_streams_follow_the_run(source: Events) -> None:
    hub = EventHub(source, limits())
    streams = [stream(hub, source, 0) for _ in range(20)]
    await until(lambda: source.reads == 1)  # the watch's first read
    source.add()
    hub.wake(RUN)
    for each in streams:
        assert await received(each, 1) == [1]
    assert source.reads == 2
    await hub.aclose()


async def test_a_stream_that_leaves_stops_the_watch_it_was_alone_in(source: Events) -> None:
    hub = EventHub(source, limits())
    lone = hub.join(RUN, 0)
    assert hub.watched == 1
    hub.leave(lone)
    await until(lambda: hub.watched == 0)
    await hub.aclose()

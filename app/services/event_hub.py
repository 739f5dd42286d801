"""The process's hub of run events: one watch per watched run, fanning its events out to the
streams that follow it.

A watch reads its run's new events from the store once per wake-up, whoever listens: when the
store says the run has new events (a PostgreSQL notification from any process, or this
process's own commit on SQLite and MariaDB: `wake`), and every `poll_seconds` in any case (the
only way to see another MariaDB process's events, and the net under a lost notification).
Each stream has a bounded buffer: a watch never waits for a stream, and a stream that falls
`buffer` events behind is cut off (its client resumes with Last-Event-ID). The run being
watched never waits for anyone: the store wrote its events in its own transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass

from app.domain.records import RunEvent
from app.errors import StoreUnavailableError
from app.services.ports import RunEvents
from app.settings import Settings

logger = logging.getLogger(__name__)

BATCH = 200  # events read at once
# Outputs whose JSON text in the store is longer than this many times MAX_ANSWER_VALUE_BYTES
# are not read: they could not be answered whole (app/schemas/answers.py, STORE_TEXT_FACTOR).
STORE_TEXT_FACTOR = 4


@dataclass(frozen=True)
class EventLimits:
    buffer: int  # events a stream may fall behind (EVENTS_BUFFER)
    keepalive_seconds: float  # EVENTS_KEEPALIVE_SECONDS
    streams_per_caller: int  # EVENTS_STREAMS_PER_CALLER
    poll_seconds: float  # EVENTS_POLL_SECONDS
    value_limit: int  # outputs whose JSON text is longer are left in the store

    @classmethod
    def of_settings(cls, settings: Settings) -> EventLimits:
        return cls(
            buffer=settings.events_buffer,
            keepalive_seconds=settings.events_keepalive_seconds,
            streams_per_caller=settings.events_streams_per_caller,
            poll_seconds=settings.events_poll_seconds,
            value_limit=STORE_TEXT_FACTOR * settings.max_answer_value_bytes,
        )


class Subscriber:
    """A stream's place in a watch: the events not yet taken, at most `limit` of them."""

    def __init__(self, run_id: str, joined_at: int, limit: int) -> None:
        self.run_id = run_id
        self.joined_at = joined_at  # the watch delivers only events after this id
        self.limit = limit
        self.events: deque[RunEvent] = deque()
        self.ended = False  # nothing more will come: the run ended, or the stream was cut
        self.cut_off = False
        self._changed = asyncio.Event()

    def offer(self, event: RunEvent) -> bool:
        """Take the event; False (and the stream is cut off) when its buffer is full."""
        if len(self.events) >= self.limit:
            self.cut_off = True
            self.end()
            return False
        self.events.append(event)
        self._changed.set()
        return True

    def end(self) -> None:
        self.ended = True
        self._changed.set()

    async def next(self, wait_seconds: float) -> RunEvent | None:
        """The next event; None when none came within `wait_seconds` or none will come."""
        if not self.events and not self.ended:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):  # not wait_for: see worker/claim_loop.py
                async with asyncio.timeout(wait_seconds):
                    await self._changed.wait()
        return self.events.popleft() if self.events else None


class _Watch:
    """One run's reader: its events after `position`, to every subscriber."""

    def __init__(self, hub: EventHub, run_id: str, position: int) -> None:
        self.hub = hub
        self.run_id = run_id
        self.position = position
        self.subscribers: set[Subscriber] = set()
        self.wake = asyncio.Event()
        self.task = asyncio.create_task(self._follow(), name=f"run-events-{run_id}")

    async def _follow(self) -> None:
        try:
            while self.subscribers:
                self.wake.clear()  # a wake-up while reading reads again
                try:
                    found = await self.hub.source.events_after(
                        self.run_id, self.position, BATCH, self.hub.limits.value_limit
                    )
                except StoreUnavailableError as error:  # passing: read again at the next poll
                    logger.warning("reading the events of run %s failed: %s", self.run_id, error)
                    found = []
                if self._deliver(found):
                    break
                if len(found) < BATCH:
                    with contextlib.suppress(TimeoutError):  # not wait_for: see claim_loop.py
                        async with asyncio.timeout(self.hub.limits.poll_seconds):
                            await self.wake.wait()
        except Exception:  # a bug: its streams end (their clients resume), the hub goes on
            logger.exception("following the events of run %s failed", self.run_id)
        finally:
            for subscriber in self.subscribers:
                subscriber.end()
            self.subscribers.clear()
            self.hub.forget(self)

    def _deliver(self, found: list[RunEvent]) -> bool:
        """Hand the events to every subscriber; True once the run's terminal event is out."""
        for event in found:
            self.position = event.id
            for subscriber in list(self.subscribers):
                if not subscriber.offer(event):
                    logger.info("run %s: a stream fell behind and was cut off", self.run_id)
                    self.subscribers.discard(subscriber)
            if event.ends_run:
                return True
        return False


class EventHub:
    def __init__(self, source: RunEvents, limits: EventLimits) -> None:
        self.source = source
        self.limits = limits
        self._watches: dict[str, _Watch] = {}

    def join(self, run_id: str, after: int) -> Subscriber:
        """Follow the run's events: those after the watch's position (`joined_at`), which is
        `after` unless the run was watched already."""
        watch = self._watches.get(run_id)
        if watch is None:
            watch = self._watches[run_id] = _Watch(self, run_id, after)
        subscriber = Subscriber(run_id, watch.position, self.limits.buffer)
        watch.subscribers.add(subscriber)
        return subscriber

    def leave(self, subscriber: Subscriber) -> None:
        watch = self._watches.get(subscriber.run_id)
        if watch is not None and subscriber in watch.subscribers:
            watch.subscribers.discard(subscriber)
            watch.wake.set()  # the last one gone: the watch stops

    def wake(self, run_id: str) -> None:
        """The run has new events in the store."""
        watch = self._watches.get(run_id)
        if watch is not None:
            watch.wake.set()

    def notified(self, payload: str) -> None:
        """A notification's run ids (comma-separated); empty: notifications may have been
        lost, every watch reads again."""
        run_ids = payload.split(",") if payload else list(self._watches)
        for run_id in run_ids:
            self.wake(run_id)

    def forget(self, watch: _Watch) -> None:
        if self._watches.get(watch.run_id) is watch:
            del self._watches[watch.run_id]

    @property
    def watched(self) -> int:
        return len(self._watches)

    async def aclose(self) -> None:
        watches = list(self._watches.values())
        for watch in watches:
            watch.task.cancel()
        await asyncio.gather(*(watch.task for watch in watches), return_exceptions=True)

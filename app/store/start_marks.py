"""Start marks, written behind: most steps finish within milliseconds, and their start is then
recorded with their finish, in one commit instead of two.

A step still running after `START_MARK_DELAY` gets its own "running" commit, so long steps
show up: one background writer per store writes the marks that came due, every
`START_MARK_DELAY`. Losing an unwritten start mark in a crash loses nothing: the task is simply
not running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from app.background import stop_task
from app.domain.clock import utcnow
from app.domain.runs import TaskKey
from app.errors import LeaseLostError

logger = logging.getLogger(__name__)

START_MARK_DELAY = 0.2  # seconds a task may run before its start gets a commit of its own

StartMark = tuple[int, datetime]  # (attempt, started at)
WriteMark = Callable[[str, TaskKey, StartMark], Awaitable[None]]


class StartMarks:
    def __init__(self, write: WriteMark, *, together: bool) -> None:
        """`write`: writes one mark; `together`: the due marks are written at once (they go
        in one group commit), else one at a time (one writer, one pooled connection)."""
        self._write = write
        self._together = together
        self._marks: dict[tuple[str, TaskKey], StartMark] = {}
        self._writer: asyncio.Task[None] | None = None

    def add(self, run_id: str, key: TaskKey, mark: StartMark) -> None:
        self._marks[run_id, key] = mark
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_due(), name="start-marks")

    def take(self, run_id: str, key: TaskKey) -> StartMark | None:
        """The task's unwritten mark, which the next update of the task takes along."""
        return self._marks.pop((run_id, key), None)

    async def aclose(self) -> None:
        await stop_task(self._writer)
        self._marks.clear()

    async def _write_due(self) -> None:
        """While tasks run, write the start marks of those running longer than the delay."""
        try:
            while self._marks:
                await asyncio.sleep(START_MARK_DELAY)
                due_before = utcnow() - timedelta(seconds=START_MARK_DELAY)
                due = [key for key, (_, at) in self._marks.items() if at <= due_before]
                if self._together:
                    await asyncio.gather(*(self._write_one(*key) for key in due))
                else:
                    for run_id, key in due:
                        await self._write_one(run_id, key)
        finally:
            self._writer = None

    async def _write_one(self, run_id: str, key: TaskKey) -> None:
        """Best effort: when the store fails now, the mark is lost, not the run."""
        mark = self.take(run_id, key)
        if mark is None:  # the task finished and took its mark along
            return
        try:
            await self._write(run_id, key, mark)
        except LeaseLostError:  # the run's new owner writes its own marks
            pass
        except Exception as error:
            logger.warning("run %s: writing the start of %s failed (%r)", run_id, key, error)

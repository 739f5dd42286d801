"""`GroupCommit`: writes that arrive while a commit is in flight are committed together by the
next one, in one transaction, each write getting its own answer.

The fast paths of the run store (`postgres.PostgresPath`, `sqlite.SqlitePath`) queue their
writes here and give the function that commits a batch. A lone write commits at once on its
own; under load the writes of many runs share each commit, so the commits per run fall as the
load rises. One refused write must not fail the others of its batch: a batch function that
fails raises, and then each write of the batch is committed again on its own (refusals are
rare, and undoing a batch costs less than a savepoint around every write), unless the
failure is a passing one (the store is unreachable): that one fails them all.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from app.domain.records import Creation
from app.errors import LeaseLostError
from app.store.database import is_passing_failure

W = TypeVar("W")


@dataclass
class _Pending(Generic[W]):
    write: W
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit(Generic[W]):
    def __init__(self, commit: Callable[[list[W]], Awaitable[list[Any]]]) -> None:
        """`commit`: commits a batch in one transaction; one answer per write, in order."""
        self._commit = commit
        self._pending: list[_Pending[W]] = []
        self._committer: asyncio.Task[None] | None = None
        self.commits = 0  # transactions made (tests count them; bench/ reports commits per run)

    async def submit(self, write: W) -> Any:
        """Queue `write` for the next commit; its answer once committed (or its error)."""
        # Shielded: a caller cancelled meanwhile does not take its write out of a batch that
        # may already be committing.
        return await asyncio.shield(self.queue(write))

    def queue(self, write: W, *, linger: bool = False) -> asyncio.Future[Any]:
        """Queue `write` for the next commit without waiting: the future of its answer.

        `linger`: when this write starts a commit, the commit first lets the tasks ready now
        run, so that what they queue at once joins it (a run created to be executed here at
        once: its start and its pure steps' finishes)."""
        pending = _Pending(write)
        self._pending.append(pending)
        if self._committer is None:
            committing = self._commit_pending(linger)
            self._committer = asyncio.create_task(committing, name="group-commit")
        return pending.done

    async def aclose(self) -> None:
        """Let the writes already queued commit."""
        if self._committer is not None:
            await asyncio.shield(self._committer)

    async def _commit_pending(self, linger: bool) -> None:
        """Commit the queued writes, batch after batch, until none is left."""
        batch: list[_Pending[W]] = []
        try:
            if linger:
                await asyncio.sleep(0)  # one turn of the loop: the tasks ready now run first
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    answers = await self._commit_batch(batch)
                except Exception as error:
                    if len(batch) > 1 and not is_passing_failure(error):
                        # One refused write must not fail the others: each on its own.
                        for pending in batch:
                            await self._commit_alone(pending)
                    else:
                        for pending in batch:
                            pending.done.set_exception(error)
                else:
                    for pending, answer in zip(batch, answers, strict=True):
                        pending.done.set_result(answer)
        except asyncio.CancelledError:  # the process is stopping: no writer waits forever
            for pending in [*batch, *self._pending]:
                if not pending.done.done():
                    pending.done.cancel()
            raise
        finally:
            self._committer = None

    async def _commit_alone(self, pending: _Pending[W]) -> None:
        try:
            (answer,) = await self._commit_batch([pending])
        except Exception as error:
            pending.done.set_exception(error)
        else:
            pending.done.set_result(answer)

    async def _commit_batch(self, batch: list[_Pending[W]]) -> list[Any]:
        self.commits += 1
        return await self._commit([pending.write for pending in batch])


class RunWrites(Generic[W]):
    """The lease-checked writes of runs, through a `GroupCommit`: waited for, or queued without
    waiting (the writes the engine lets the store commit later: `app/engine/store.py`), whose
    answers the run's next waited write, or `committed`, checks. A write's answer is None when
    the writer no longer held the run's lease: it wrote nothing."""

    def __init__(self, writes: GroupCommit[W]) -> None:
        self.writes = writes
        self._unchecked: dict[str, list[asyncio.Future[Any]]] = defaultdict(list)

    async def write(self, run_id: str, write: W) -> None:
        """Commit `write` (with the run's writes queued before it); `LeaseLostError` if one of
        them was refused."""
        answer = await self.writes.submit(write)
        if run_id in self._unchecked:  # queued before it: their refusal is the cause
            await self.committed(run_id)
        _applied(run_id, answer)

    def write_later(self, run_id: str, write: W) -> None:
        """Queue `write` for the next commit without waiting for it."""
        self._later(run_id, self.writes.queue(write))

    def create_later(self, run_id: str, write: W) -> asyncio.Future[Any]:
        """Queue the creation of a run this process executes at once, without waiting: its
        writes join the same commit (`GroupCommit.queue`'s `linger`). The future of its
        answer, a `Creation`; the run's writes after it raise `LeaseLostError` if the run
        was not created (its version went stale), as the store refuses them."""
        done = self.writes.queue(write, linger=True)
        self._later(run_id, done)
        return done

    def _later(self, run_id: str, done: asyncio.Future[Any]) -> None:
        done.add_done_callback(_retrieved)  # checked later, or never if the run broke
        self._unchecked[run_id].append(done)

    async def committed(self, run_id: str) -> None:
        """Wait for the run's writes queued without waiting; raise what refused one."""
        for done in self._unchecked.pop(run_id, ()):
            _applied(run_id, await asyncio.shield(done))

    async def landed(self, run_id: str) -> None:
        """Wait for the run's writes queued without waiting to be committed or refused,
        leaving their answers for `committed`."""
        queued = [asyncio.shield(done) for done in self._unchecked.get(run_id, ())]
        if queued:
            await asyncio.wait(queued)


def _applied(run_id: str, answer: Any) -> None:
    if answer is None:  # not "not watched": not applied at all
        raise LeaseLostError(f"run {run_id}: this worker no longer holds its lease")
    if answer in _NOT_CREATED:
        raise LeaseLostError(f"run {run_id}: it was not created ({answer})")


# The answers of a creation queued with `create_later` that did not create the run (a
# `Creation`, or PostgreSQL's text of one: they compare equal).
_NOT_CREATED = (Creation.KEY_TAKEN, Creation.STALE)


def _retrieved(done: asyncio.Future[Any]) -> None:
    """Mark a failed future's error as seen (asyncio logs one nobody retrieved)."""
    if not done.cancelled():
        done.exception()

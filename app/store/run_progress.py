"""A run's progress as PostgreSQL's fast path merges it: a new run's start and the finishes of
its steps, queued one after the other in the same group commit, written as one statement.

A 3-step chain of pure steps reports its start, three finishes and its end in the time of one
commit (`app/engine/store.py`); written one by one, that is four statements that lock the run
row, update it four times and each task row twice. Merged (`queries/tasks.PG_PROGRESS`), the
run row is updated once and each task row once: a quarter of the statements, less than half
of the row versions, and one round trip instead of four.

The merged statement is the composition of the ones it replaces, for the cases the engine
produces (`mergeable`); a test writes the same progress both ways and compares every row. It
writes no events: a watched run's statement changes nothing and answers so, and its parts
are then written one by one right after it, with their events, each checking the lease again:
in the batch's transaction, or each in its own when the batch was that one statement
(`postgres.py`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from app.domain.records import Creation, NewRunRow
from app.domain.runs import TaskStatus
from app.engine.store import TaskFinish
from app.store.queries import runs, tasks
from app.store.start_marks import StartMark


@dataclass(frozen=True)
class Created:
    """A run created with its first progress (`create_later`)."""

    run: NewRunRow


@dataclass(frozen=True)
class Started:
    """A new run starts: `steps` to run, `ready` queued."""

    at: datetime
    steps: int
    ready: Sequence[str]


@dataclass(frozen=True)
class Finished:
    """A task finishes, with its start mark when it was not written on its own. Its values
    as the statements take them are encoded once, whether the finish is written alone or
    merged."""

    finish: TaskFinish
    mark: StartMark | None

    @cached_property
    def values(self) -> tuple[Any, ...]:
        """Status, outputs, error, time, and the start mark's attempt and time (or NULLs)."""
        finish = self.finish
        attempt, started_at = self.mark or (None, None)
        outputs, error = json_text(finish.outputs), json_text(runs.error_value(finish.error))
        return (finish.status.value, outputs, error, finish.at, attempt, started_at)

    @cached_property
    def logged(self) -> tuple[Any, ...] | None:
        """The attempt's log: attempt, lines, truncated; None when it logged nothing."""
        log = self.finish.log
        if log is None:
            return None
        return (log.attempt, json_text(tasks.log_lines(log)), log.truncated)

    @cached_property
    def run_end(self) -> tuple[Any, ...] | None:
        """The run's end it writes: status, outputs, error; None when the run goes on."""
        ended = self.finish.ended
        if ended is None:
            return None
        return (
            ended.status.value,
            json_text(ended.outputs),
            json_text(runs.error_value(ended.error)),
        )


Progress = Created | Started | Finished


def created_part_answer(creation: Any) -> bool | None:
    """What each part merged with a run's creation answers, given the creation's answer (a
    `Creation`, or PostgreSQL's text of one): not watched, since nobody knew of the run; or
    refused (None), when the run was not created."""
    return False if creation == Creation.CREATED else None


def mergeable(progress: Progress) -> bool:
    """Whether the progress may be merged with the run's next: a start, or the finish of a
    step's own task (not a fan-out's other elements) that does not cancel others unless it
    ends the run (which cancels every unfinished task anyway)."""
    if not isinstance(progress, Finished):
        return True
    finish = progress.finish
    return (
        finish.key.task_index == 0
        and not finish.recorded
        and (finish.status is not TaskStatus.FAILED or finish.ended is not None)
    )


def merges(parts: Sequence[Progress]) -> bool:
    """Whether consecutive mergeable parts of one run form one statement: a creation only
    first and followed by the start, a start only first (after the creation), an end only
    last, each task once."""
    created = bool(parts) and isinstance(parts[0], Created)
    progress = parts[1:] if created else parts
    if len(parts) < 2 or (created and not isinstance(progress[0], Started)):
        return False
    if any(isinstance(part, Created | Started) for part in progress[1:]):
        return False
    finished = [part.finish for part in parts if isinstance(part, Finished)]
    if any(finish.ended is not None for finish in finished[:-1]):
        return False
    return len({finish.key.step_id for finish in finished}) == len(finished)


@dataclass
class Fold:
    """What a run's merged parts leave, step by step (`fold`)."""

    started: Started | None = None
    steps_finished: int = 0
    finished: list[tuple[Finished, datetime | None]] = field(default_factory=list)  # queued at
    queued: dict[str, tuple[datetime, bool]] = field(default_factory=dict)  # at, by the start
    ended: Finished | None = None  # the finish that ends the run
    logged: list[Finished] = field(default_factory=list)


def fold(parts: Sequence[Progress]) -> Fold:
    """The parts that `merges` accepted, folded: each task row is written once, the steps
    still queued at the end apart from those that finished, the run's end."""
    if isinstance(parts[0], Created):
        parts = parts[1:]
    folded = Fold()
    if isinstance(parts[0], Started):
        folded.started = parts[0]
        folded.queued.update((step_id, (parts[0].at, True)) for step_id in parts[0].ready)
    done: set[str] = set()
    for part in parts:
        if not isinstance(part, Finished):
            continue
        finish = part.finish
        step_id = finish.key.step_id
        folded.finished.append((part, folded.queued.pop(step_id, (None, False))[0]))
        done.add(step_id)
        for released in finish.released:
            if released not in done:  # each row is written once
                folded.queued.setdefault(released, (finish.at, False))
        folded.steps_finished += finish.step_finished
        if part.logged is not None:
            folded.logged.append(part)
        if part.run_end is not None:
            folded.ended = part
    return folded


def merged_arguments(parts: Sequence[Progress]) -> tuple[Any, ...]:
    """`PG_PROGRESS`'s parameters after the lease check's three ($4 on); a creation first
    adds none (its own come before them: `PG_CREATE_WITH_PROGRESS`)."""
    folded = fold(parts)
    started, ended = folded.started, folded.ended
    finishes = [
        (part.finish.key.step_id, *part.values, queued_at) for part, queued_at in folded.finished
    ]
    logs = [
        (part.finish.key.step_id, *(part.logged or ()), part.finish.at) for part in folded.logged
    ]
    end = (None, None, None, None)
    if ended is not None and ended.run_end is not None:
        end = (*ended.run_end, ended.finish.at)
    return (
        None if started is None else started.at,
        0 if started is None else started.steps,
        folded.steps_finished,
        *_columns(finishes, 8),
        list(folded.queued),
        [at for at, _ in folded.queued.values()],
        [by_start for _, by_start in folded.queued.values()],
        *end,
        *_columns(logs, 5),
    )


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one array per column (the statement unnests them)."""
    return (
        [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]
    )


def json_text(value: Any) -> str | None:
    """Plain JSON data (the engine and the service checked it: app.domain.storable) as JSON
    text, as the statements take it."""
    return None if value is None else json.dumps(value, check_circular=False)

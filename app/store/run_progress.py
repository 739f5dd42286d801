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
are then written one by one, with their events, in the same transaction (`postgres.py`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.records import AttemptLog
from app.domain.runs import TaskStatus
from app.engine.store import RunEnd, TaskFinish
from app.store.queries import runs, tasks
from app.store.start_marks import StartMark


@dataclass(frozen=True)
class Started:
    """A new run starts: `steps` to run, `ready` queued."""

    at: datetime
    steps: int
    ready: Sequence[str]


@dataclass(frozen=True)
class Finished:
    """A task finishes, with its start mark when it was not written on its own."""

    finish: TaskFinish
    mark: StartMark | None


Progress = Started | Finished


def mergeable(progress: Progress) -> bool:
    """Whether the progress may be merged with the run's next: a start, or the finish of a
    step's own task (not a fan-out's other elements) that does not cancel others unless it
    ends the run (which cancels every unfinished task anyway)."""
    if isinstance(progress, Started):
        return True
    finish = progress.finish
    return (
        finish.key.task_index == 0
        and not finish.recorded
        and (finish.status is not TaskStatus.FAILED or finish.ended is not None)
    )


def merges(parts: Sequence[Progress]) -> bool:
    """Whether consecutive mergeable parts of one run form one statement: a start only
    first, an end only last, each task once."""
    if len(parts) < 2 or any(isinstance(part, Started) for part in parts[1:]):
        return False
    finished = [part.finish for part in parts if isinstance(part, Finished)]
    if any(finish.ended is not None for finish in finished[:-1]):
        return False
    return len({finish.key.step_id for finish in finished}) == len(finished)


def merged_arguments(parts: Sequence[Progress]) -> tuple[Any, ...]:
    """`PG_PROGRESS`'s parameters after the lease check's three ($4 on)."""
    started = parts[0] if isinstance(parts[0], Started) else None
    queued: dict[str, tuple[datetime, bool]] = {}  # step -> (queued at, by the start)
    if started is not None:
        queued.update((step_id, (started.at, True)) for step_id in started.ready)
    finishes: list[tuple[Any, ...]] = []
    logs: list[tuple[Any, ...]] = []
    done: set[str] = set()
    steps_finished = 0
    end: tuple[Any, ...] = (None, None, None, None)
    for part in parts:
        if not isinstance(part, Finished):
            continue
        finish = part.finish
        step_id = finish.key.step_id
        queued_at = queued.pop(step_id, (None, False))[0]
        finishes.append((step_id, *finish_values(part), queued_at))
        done.add(step_id)
        for released in finish.released:
            if released not in done:  # each row is written once by the statement
                queued.setdefault(released, (finish.at, False))
        steps_finished += finish.step_finished
        if finish.log is not None:
            logs.append((step_id, *log_values(finish.log), finish.at))
        if finish.ended is not None:
            end = (*end_values(finish.ended), finish.at)
    return (
        None if started is None else started.at,
        0 if started is None else started.steps,
        steps_finished,
        *_columns(finishes, 8),
        list(queued),
        [at for at, _ in queued.values()],
        [by_start for _, by_start in queued.values()],
        *end,
        *_columns(logs, 5),
    )


def finish_values(finished: Finished) -> tuple[Any, ...]:
    """A finish as the statements take it: status, outputs, error, time, and its start mark's
    attempt and time (or NULLs)."""
    finish = finished.finish
    attempt, started_at = finished.mark or (None, None)
    outputs, error = json_text(finish.outputs), json_text(runs.error_value(finish.error))
    return (finish.status.value, outputs, error, finish.at, attempt, started_at)


def end_values(ended: RunEnd) -> tuple[Any, ...]:
    """A run's end as the statements take it: status, outputs, error."""
    return (ended.status.value, json_text(ended.outputs), json_text(runs.error_value(ended.error)))


def log_values(log: AttemptLog) -> tuple[Any, ...]:
    """An attempt's log as the statements take it: attempt, lines, truncated."""
    return (log.attempt, json_text(tasks.log_lines(log)), log.truncated)


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one array per column (the statement unnests them)."""
    return (
        [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]
    )


def json_text(value: Any) -> str | None:
    """Plain JSON data (the engine and the service checked it: app.domain.storable) as JSON
    text, as the statements take it."""
    return None if value is None else json.dumps(value, check_circular=False)

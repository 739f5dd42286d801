"""Live per-step progress of a run on a terminal (`python -m app run`, `watch`).

`StepProgress` is an engine observer (`app/engine/observer.py`) that only keeps state: each
call is a dictionary lookup and an assignment, as the engine's hot path asks. `rich`'s `Live`
redraws that state a few times a second from its own thread; the rows are all made before the
run starts, so the dictionary it reads never changes size under it.

A step's line shows its status and time; a fan-out also shows a bar of its settled elements.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from app.domain.runs import RunStatus, TaskKey, TaskStatus
from app.dsl.inputs import validate_inputs
from app.dsl.models import FlowDefinition
from app.engine.executor import FlowExecutor
from app.engine.observer import EngineObserver
from app.engine.run import RunResult
from app.errors import FlowFailedError

# How each status looks: a mark and a style.
_LOOKS: dict[TaskStatus, tuple[str, str]] = {
    TaskStatus.PENDING: ("·", "dim"),
    TaskStatus.QUEUED: ("·", "dim"),
    TaskStatus.RUNNING: ("▶", "cyan"),
    TaskStatus.WAITING: ("◷", "cyan"),
    TaskStatus.COMPLETED: ("✓", "green"),
    TaskStatus.FAILED: ("✗", "bold red"),
    TaskStatus.SKIPPED: ("↷", "dim"),
    TaskStatus.CANCELLED: ("■", "yellow"),
}
BAR_WIDTH = 24


@dataclass
class StepRow:
    step_id: str
    task: str
    status: TaskStatus = TaskStatus.PENDING
    started: float | None = None
    seconds: float | None = None  # once settled; None for a step that never ran
    elements: int | None = None  # a fan-out's, once known
    settled_elements: int = 0


class StepProgress(EngineObserver):
    """The steps of one run as they start and settle; renders itself for `rich`."""

    def __init__(
        self, definition: FlowDefinition, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.clock = clock
        self.rows = {step.id: StepRow(step.id, step.task) for step in definition.steps}

    def step_started(self, run_id: str, step_id: str) -> None:
        row = self.rows[step_id]
        row.status, row.started = TaskStatus.RUNNING, self.clock()

    def elements_expanded(self, run_id: str, step_id: str, count: int) -> None:
        self.rows[step_id].elements = count

    def element_settled(self, run_id: str, key: TaskKey, status: TaskStatus) -> None:
        self.rows[key.step_id].settled_elements += 1

    def step_settled(self, run_id: str, step_id: str, status: TaskStatus) -> None:
        row = self.rows[step_id]
        row.status = status
        if row.started is not None:
            row.seconds = self.clock() - row.started

    def finish(self) -> None:
        """The run ended: a step still running was cancelled with it (the engine says nothing
        of those), and one that never started never will."""
        now = self.clock()
        for row in self.rows.values():
            if row.status is TaskStatus.RUNNING:
                row.status = TaskStatus.CANCELLED
                row.seconds = now - row.started if row.started is not None else None

    def __rich__(self) -> RenderableType:
        return render_steps(list(self.rows.values()), self.clock())


def render_steps(rows: Iterable[StepRow], now: float) -> Table:
    """A line per step: mark, id, status, time (running so far, or taken), fan-out bar."""
    table = Table.grid(padding=(0, 1))
    for _ in range(5):
        table.add_column()
    for row in rows:
        mark, style = _LOOKS[row.status]
        seconds = row.seconds
        if seconds is None and row.started is not None and row.status is TaskStatus.RUNNING:
            seconds = now - row.started
        table.add_row(
            Text(mark, style=style),
            Text(row.step_id, style="bold"),
            Text(row.status.value, style=style),
            Text(format_seconds(seconds) if seconds is not None else "", justify="right"),
            _elements(row),
        )
    return table


def _elements(row: StepRow) -> RenderableType:
    if not row.elements:
        return Text("")
    bar = ProgressBar(total=row.elements, completed=row.settled_elements, width=BAR_WIDTH)
    grid = Table.grid(padding=(0, 1))
    grid.add_row(bar, Text(f"{row.settled_elements}/{row.elements}"))
    return grid


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes:.0f}m{rest:02.0f}s"


def run_with_progress(
    executor: FlowExecutor,
    definition: FlowDefinition,
    inputs: Mapping[str, Any],
    console: Console,
) -> RunResult:
    """Run the flow, its steps redrawn live on a terminal console (on any other, drawn once
    when the run ends). The executor reports to the display: give it no other observer.

    Invalid inputs raise InputValidationError before anything is drawn."""
    values = validate_inputs(definition.inputs, inputs, strict=definition.strict_inputs)
    progress = StepProgress(definition)
    executor.observer = progress
    run = executor.run_checked(definition, values, str(uuid.uuid4()))
    if not console.is_terminal:  # a log or a pipe: the steps once, as they ended
        try:
            return asyncio.run(run)
        finally:
            progress.finish()
            console.print(progress)
    with Live(progress, console=console, refresh_per_second=8):
        try:
            return asyncio.run(run)
        finally:
            progress.finish()  # drawn once more as the display stops


def execute_with_progress(
    executor: FlowExecutor,
    source: str,
    inputs: Mapping[str, Any],
    console: Console | None = None,
) -> dict[str, Any]:
    """`FlowExecutor.execute_flow`, drawing the steps as they go: the outputs, or
    DefinitionError, InputValidationError or FlowFailedError as it raises them."""
    definition = executor.load(source)
    result = run_with_progress(executor, definition, inputs, console or Console())
    if result.status is not RunStatus.COMPLETED:
        assert result.error is not None
        raise FlowFailedError(result.run_id, result.error)
    return result.outputs or {}

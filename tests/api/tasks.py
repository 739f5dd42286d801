"""Tasks for the API tests, loaded through TASK_MODULES like a user's own module.

Each records its execution as a line in `<directory>/<name>.log`, so a test can count how
often a step really ran; `FailUntilMarker` fails until the file `<directory>/<marker>` exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.tasks import NonRetryableError, TaskContext, TaskError, TaskRegistry
from tests.polling import until

registry = TaskRegistry()


def executions(directory: Path, name: str) -> int:
    log = directory / f"{name}.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _record(directory: str, name: str) -> int:
    with (Path(directory) / f"{name}.log").open("a") as log:
        log.write("ran\n")
    return executions(Path(directory), name)


@registry.register("RecordExecution", description="Count an execution")
def record_execution(directory: str, name: str) -> dict[str, Any]:
    return {"count": _record(directory, name)}


@registry.register("FailUntilMarker", description="Fail until a marker file exists")
def fail_until_marker(directory: str, name: str, marker: str) -> dict[str, Any]:
    count = _record(directory, name)
    if not (Path(directory) / marker).exists():
        raise NonRetryableError(f"the marker {marker!r} is missing")
    return {"count": count}


@registry.register("WaitForMarker", description="Wait (20 s at most) until a marker file exists")
async def wait_for_marker(directory: str, marker: str) -> dict[str, Any]:
    await until((Path(directory) / marker).exists, deadline=20)
    return {"waited": True}


@registry.register("LogAndFail", description="Log `lines` lines, then fail (retried if asked)")
async def log_and_fail(message: str, lines: int, *, context: TaskContext) -> dict[str, Any]:
    for index in range(lines):
        context.logger.info("%s %d (attempt %d)", message, index, context.attempt)
    raise TaskError(f"failed after logging {lines} line(s)")

"""Structured logs: `LOG_FORMAT=text|json`, and the run, step and attempt a line is about.

With `json`, every line the process writes is one JSON object — the service's own lines,
the tasks' (`context.logger`), uvicorn's error and access lines — with `at`, `level`,
`logger`, `message`, and `run_id`, `flow`, `step_id`, `task_index`, `attempt` and `worker`
wherever they apply. Those come from context variables that the `Runner` sets around a run
and the engine's observer around an attempt (`bind`), so any code running for the run tags
its lines without passing anything along; a task's logger carries them as well.

The standard library's logging with a formatter of our own, rather than structlog: every
library we run (uvicorn, SQLAlchemy, asyncpg) logs through the standard library, and what is
asked here is one formatter and a context variable, fewer lines than structlog's set-up
would take, and no new dependency.
"""

from __future__ import annotations

import json
import logging
import logging.config
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

# The fields a line may carry about the work it is about, in the order they are written.
FIELDS = ("run_id", "flow", "step_id", "task_index", "attempt", "worker")

_context: ContextVar[dict[str, Any] | None] = ContextVar("flow_manager_log_fields", default=None)
_process: dict[str, Any] = {}  # the process's own fields (its worker id)


def bind(**fields: Any) -> Token[dict[str, Any] | None]:
    """Tag the lines logged from here on in this context (an asyncio task and the tasks it
    starts) with `fields`; `unbind` with what it returns ends it."""
    current = _context.get()
    return _context.set({**current, **fields} if current else fields)


def unbind(token: Token[dict[str, Any] | None]) -> None:
    _context.reset(token)


def bound() -> dict[str, Any]:
    """The fields lines logged here carry now."""
    return {**_process, **(_context.get() or {})}


def set_worker(worker_id: str) -> None:
    """The process's worker id, on every line it logs from now on."""
    _process["worker"] = worker_id


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = bound()
        for name in FIELDS:  # a task logger's own fields (LoggerAdapter extra) come first
            value = record.__dict__.get(name, fields.get(name))
            if value is not None:
                line[name] = value
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            line.update(_access_fields(record.args))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def _access_fields(args: tuple[Any, ...]) -> dict[str, Any]:
    """uvicorn's access line: (client, method, path, HTTP version, status)."""
    if len(args) != 5:
        return {}
    client, method, path, version, status = args
    return {"client": client, "method": method, "path": path, "http": version, "status": status}


def configure(log_format: LogFormat, level: str) -> None:
    """The process's logging, for a process that is not uvicorn's (a standalone worker)."""
    logging.config.dictConfig(logging_config(log_format, level))
    logging.captureWarnings(log_format == "json")


def uvicorn_log_config(log_format: LogFormat, level: str) -> dict[str, Any] | None:
    """uvicorn's `log_config`: None (uvicorn's own) for text; with json, every logger of the
    process — uvicorn's error and access lines included — writes JSON lines to stderr, and
    Python's warnings become log lines too."""
    if log_format == "text":
        return None
    logging.captureWarnings(True)
    return logging_config(log_format, level)


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    if log_format == "json":
        formatter: dict[str, Any] = {"()": f"{__name__}.JsonFormatter"}
    else:
        formatter = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    own = {"handlers": ["main"], "level": level.upper(), "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "loggers": {
            "uvicorn": own,
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": own,
        },
        "root": {"handlers": ["main"], "level": level.upper()},
    }

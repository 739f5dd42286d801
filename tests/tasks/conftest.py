"""Fixtures of the task tests: a real local HTTP server and a task context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.tasks.context import TaskContext
from tests.http_server import LocalHttpServer, serve


@pytest.fixture
def http_server() -> Iterator[LocalHttpServer]:
    with serve() as server:
        yield server


@pytest.fixture
def context() -> TaskContext:
    return TaskContext.for_attempt("run-1", "TestFlow", "step_1", 0, 1)

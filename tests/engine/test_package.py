"""The engine package imports its parts on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import app.engine

ROOT = Path(app.engine.__file__).parents[2]  # where `app` is imported from here


def imported_after(statement: str) -> set[str]:
    """The modules of `app` that `statement` imports, in a fresh interpreter."""
    probe = (
        "import sys\n"
        f"{statement}\n"
        "print('\\n'.join(name for name in sys.modules if name.startswith('app.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_importing_the_store_port_imports_neither_executor_nor_tasks_nor_connections() -> None:
    imported = imported_after("import app.engine.store")

    assert "app.engine.store" in imported
    assert "app.engine.executor" not in imported
    assert not {name for name in imported if name.startswith(("app.tasks", "app.connections"))}


def test_the_package_names_are_imported_on_first_use() -> None:
    imported = imported_after("from app.engine import FlowExecutor, RunResult, RunStore")

    assert {"app.engine.executor", "app.engine.run", "app.engine.store"} <= imported


def test_the_package_names_are_the_modules_ones() -> None:
    from app.engine.executor import FlowExecutor
    from app.engine.run import RunResult
    from app.engine.store import RunStore

    assert app.engine.FlowExecutor is FlowExecutor
    assert app.engine.RunResult is RunResult
    assert app.engine.RunStore is RunStore
    assert {"FlowExecutor", "RunResult", "RunStore"} <= set(dir(app.engine))


def test_run_and_task_statuses_live_in_the_domain_not_the_engine() -> None:
    with pytest.raises(AttributeError, match="RunStatus"):
        _ = app.engine.RunStatus

"""`builtin_registry()`: every built-in of the flow language, without importing any driver."""

from __future__ import annotations

import subprocess
import sys

from app.tasks.builtins import builtin_registry

DESIGN_BUILTINS = {
    "pg_query",
    "pg_execute",
    "pg_transaction",
    "redis_get",
    "redis_set",
    "redis_exists",
    "redis_incr",
    "redis_delete",
    "redis_expire",
    "http_request",
    "set",
    "log",
    "sleep",
    "wait_for",
    "flow",
    "fail",
}


def test_it_holds_every_built_in_and_only_built_ins() -> None:
    registry = builtin_registry()
    assert set(registry) == DESIGN_BUILTINS
    assert all(spec.builtin for spec in registry.catalog().values())


def test_each_call_gives_a_new_registry_to_extend() -> None:
    mine = builtin_registry()
    mine.register("Custom")(lambda: None)
    assert "Custom" not in builtin_registry()


def test_importing_the_built_ins_imports_no_database_driver() -> None:
    probe = (
        "import sys, app.tasks.builtins\n"
        "print(sorted({'asyncpg', 'redis'} & {name.split('.')[0] for name in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"

"""The layers' import rules (DESIGN.md section 6), checked on the source.

`app.dsl` is the flow language: no I/O and nothing of ours but `app.errors`. The inner layers
never reach outwards: tasks and connections know nothing of the engine, the engine nothing of
the HTTP API, the store's SQL or the worker.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"

# Pure standard-library modules the flow language may use; anything else is I/O or a layer.
DSL_ALLOWED = {
    "__future__",
    "abc",
    "ast",
    "collections",
    "dataclasses",
    "enum",
    "functools",
    "itertools",
    "json",
    "math",
    "operator",
    "re",
    "threading",
    "time",
    "types",
    "typing",
    "warnings",
    "yaml",
    "app.dsl",
    "app.errors",
}
FORBIDDEN = {
    "app.errors": {"app."},
    "app.domain": {
        "app.dsl",
        "app.engine",
        "app.tasks",
        "app.connections",
        "app.store",
        "app.services",
        "app.schemas",
        "app.api",
        "app.worker",
        "app.cli",
    },
    "app.store": {"app.services", "app.schemas", "app.api", "app.worker", "app.cli"},
    "app.services": {"app.schemas", "app.api", "app.worker", "app.cli"},
    "app.connections": {"app.engine", "app.tasks", "app.store", "app.api", "app.worker", "app.cli"},
    "app.tasks": {"app.engine", "app.store", "app.api", "app.worker", "app.cli"},
    "app.engine": {"app.store", "app.api", "app.worker", "app.cli", "app.schemas"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def modules_under(package: str) -> list[Path]:
    base = APP.parent / package.replace(".", "/")
    return sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]


def allowed_in_dsl(module: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in DSL_ALLOWED)


@pytest.mark.parametrize("path", modules_under("app.dsl"), ids=lambda path: path.name)
def test_the_flow_language_imports_no_io_and_no_other_layer(path: Path) -> None:
    offending = sorted(module for module in imports_of(path) if not allowed_in_dsl(module))

    assert not offending, f"{path.name} imports {offending}"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_inner_layers_do_not_import_outer_ones(package: str) -> None:
    for path in modules_under(package):
        for module in imports_of(path):
            for prefix in FORBIDDEN[package]:
                assert not module.startswith(prefix), f"{path} imports {module}"

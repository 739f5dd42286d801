"""The import contracts of pyproject.toml (`lint-imports`, run by scripts/test) hold on the source
and catch a wrong-way import: each case adds one to a copy of `app` and expects the contract
that forbids it to break."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_source(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_source_keeps_every_contract() -> None:
    result = lint(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "wrong_import", "broken"),
    [
        ("app/engine/run.py", "import app.store.database", "Layers"),
        ("app/store/notifications.py", "import app.services.access", "Layers"),
        ("app/dsl/graph.py", "import app.engine.executor", "Layers"),
        ("app/domain/runs.py", "import app.dsl.graph", "Layers"),
        ("app/connections/http.py", "import app.settings", "Layers"),
        ("app/testing/running.py", "import app.api.deps", "Layers"),
        ("app/services/flows.py", "import sqlalchemy", "Only the store speaks SQL"),
        ("app/api/deps.py", "from sqlalchemy.exc import IntegrityError", "Only the store"),
        ("app/dsl/graph.py", "import socket", "The flow language does no I/O"),
    ],
)
def test_a_wrong_way_import_breaks_its_contract(
    tmp_path: Path, module: str, wrong_import: str, broken: str
) -> None:
    root = copy_of_the_source(tmp_path)
    path = root / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{wrong_import}  # noqa\n")

    result = lint(root)

    assert result.returncode != 0
    broken_section = result.stdout.split("Broken contracts", 1)[-1]
    assert broken in broken_section

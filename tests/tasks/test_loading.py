"""Loading user task modules by dotted name or file path, and the tutorial's flow.py."""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from app.errors import TaskModuleError
from app.tasks import TaskContext
from app.tasks.loading import load_task_modules

TUTORIAL_TASKS = Path(__file__).parents[2] / "examples" / "tutorial" / "flow.py"

WITH_REGISTRY = """
from app.tasks import TaskRegistry

registry = TaskRegistry()

@registry.register("{task}")
def task(x: int) -> dict:
    return {{"x": x}}
"""

WITH_FACTORY = """
from app.tasks import TaskRegistry

def create_task_registry() -> TaskRegistry:
    registry = TaskRegistry()

    @registry.register("{task}")
    async def task(y: int = 0) -> dict:
        return {{"y": y}}

    return registry
"""


def write(directory: Path, filename: str, source: str) -> Path:
    path = directory / filename
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def package_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for importable modules, forgotten after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("fm_tasks_"):
            del sys.modules[name]


def unique_module_name() -> str:
    return f"fm_tasks_{uuid.uuid4().hex[:8]}"


def test_a_dotted_module_name_exposing_registry(package_dir: Path) -> None:
    module = unique_module_name()
    write(package_dir, f"{module}.py", WITH_REGISTRY.format(task="Double"))
    registry = load_task_modules([module])
    assert list(registry) == ["Double"]
    assert registry.get("Double").spec.required_params == {"x"}


def test_a_module_inside_a_package(package_dir: Path) -> None:
    package = unique_module_name()
    (package_dir / package).mkdir()
    write(package_dir / package, "__init__.py", "")
    write(package_dir / package, "tasks.py", WITH_FACTORY.format(task="Inner"))
    assert list(load_task_modules([f"{package}.tasks"])) == ["Inner"]


def test_a_file_path_exposing_create_task_registry(tmp_path: Path) -> None:
    path = write(tmp_path, "my tasks.py", WITH_FACTORY.format(task="FromFile"))
    path_before = list(sys.path)
    registry = load_task_modules([str(path)])
    assert list(registry) == ["FromFile"]
    assert registry.get("FromFile").spec.optional_params == {"y"}
    assert sys.path == path_before  # the file's directory is not added to sys.path


def test_a_file_can_be_loaded_again(tmp_path: Path) -> None:
    path = write(tmp_path, "tasks.py", WITH_REGISTRY.format(task="Again"))
    assert list(load_task_modules([str(path)])) == ["Again"]
    assert list(load_task_modules([str(path)])) == ["Again"]


def test_a_file_is_loaded_from_its_text_not_a_stale_bytecode_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit of the same size within the same second (what `watch` reloads) is seen."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as users run Python
    path = write(tmp_path, "tasks.py", WITH_REGISTRY.format(task="Edited"))
    load_task_modules([str(path)])
    stat = path.stat()
    path.write_text(path.read_text().replace('{"x": x}', '{"x": 7}'))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime

    registry = load_task_modules([str(path)])

    assert registry.get("Edited").function(x=1) == {"x": 7}
    assert not (tmp_path / "__pycache__").exists()


def test_modules_are_merged_and_blank_names_skipped(tmp_path: Path, package_dir: Path) -> None:
    module = unique_module_name()
    write(package_dir, f"{module}.py", WITH_REGISTRY.format(task="One"))
    path = write(tmp_path, "two.py", WITH_FACTORY.format(task="Two"))
    registry = load_task_modules([f" {module} ", "", str(path)])
    assert sorted(registry) == ["One", "Two"]


def test_no_modules_give_an_empty_registry() -> None:
    assert len(load_task_modules([])) == 0


def test_a_task_name_in_two_modules_is_an_error(tmp_path: Path) -> None:
    first = write(tmp_path, "first.py", WITH_REGISTRY.format(task="Same"))
    second = write(tmp_path, "second.py", WITH_FACTORY.format(task="Same"))
    with pytest.raises(TaskModuleError, match=r"second\.py.*'Same' is already registered"):
        load_task_modules([str(first), str(second)])


def test_a_missing_module_is_an_error() -> None:
    with pytest.raises(TaskModuleError, match=r"'no_such_tasks_module'.*ModuleNotFoundError"):
        load_task_modules(["no_such_tasks_module"])


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.py")
    with pytest.raises(TaskModuleError, match="no such file"):
        load_task_modules([missing])


def test_a_module_exposing_neither_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.py", "VALUE = 1\n")
    with pytest.raises(TaskModuleError, match="neither `registry` nor `create_task_registry"):
        load_task_modules([str(path)])


def test_a_registry_of_the_wrong_type_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "wrong.py", "registry = {}\n")
    with pytest.raises(TaskModuleError, match="gave a dict where a TaskRegistry"):
        load_task_modules([str(path)])


def test_a_failing_factory_is_an_error(tmp_path: Path) -> None:
    source = "def create_task_registry():\n    raise RuntimeError('no config')\n"
    path = write(tmp_path, "factory.py", source)
    with pytest.raises(TaskModuleError, match=r"create_task_registry\(\) failed.*no config"):
        load_task_modules([str(path)])


@pytest.mark.parametrize(
    ("source", "cause"),
    [
        ("import no_such_dependency_xyz\n", "ModuleNotFoundError"),
        ("def broken(:\n", "SyntaxError"),
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
    ],
)
def test_an_import_error_names_the_module_and_the_cause(
    tmp_path: Path, source: str, cause: str
) -> None:
    path = write(tmp_path, "broken.py", source)
    with pytest.raises(TaskModuleError, match=rf"broken\.py.*could not be imported: {cause}"):
        load_task_modules([str(path)])


def test_the_tutorial_tasks_load_by_path() -> None:
    registry = load_task_modules([str(TUTORIAL_TASKS)])
    assert sorted(registry) == ["TransformUser", "UpdateLastLogin"]

    transform = registry.get("TransformUser")
    assert transform.spec.required_params == {"user_data"}
    assert transform.spec.description == "Transform and validate user data from database"

    update = registry.get("UpdateLastLogin")
    assert update.spec.required_params == {"user_id"}
    assert "connection" in update.parameters  # injected, not a step param
    assert "connection" not in update.spec.params


async def test_the_tutorial_tasks_run(postgres_url: str) -> None:
    registry = load_task_modules([str(TUTORIAL_TASKS)])
    context = TaskContext.for_attempt("run-1", "UserManager", "transform", 0, 1)

    transformed = await registry.get("TransformUser").invoke(
        {"user_data": {"id": 1, "email": "a@example.org", "name": "Ada", "active": True}},
        context=context,
    )
    assert transformed["user"]["status"] == "active"

    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("CREATE TABLE users (id int PRIMARY KEY, last_login timestamptz)")
        await connection.execute("INSERT INTO users (id) VALUES (1)")
        update = registry.get("UpdateLastLogin")
        found = await update.invoke({"user_id": 1}, context=context, connection=connection)
        missing = await update.invoke({"user_id": 2}, context=context, connection=connection)
        stamped = await connection.fetchval("SELECT last_login FROM users WHERE id = 1")
    finally:
        await connection.close()
    assert (found, missing) == ({"updated": True}, {"updated": False})
    assert stamped is not None

"""Loading the user's task modules (the `TASK_MODULES` setting) into one registry.

Each name is a dotted module name (`myproject.tasks`, imported normally from `sys.path`) or a
path to a `.py` file. A file is executed afresh on every load, as a module of its own under a
name derived from its path; its directory is not added to `sys.path`, so a file must not import
its siblings — make such code a package and list its dotted name instead.

A module exposes `registry` (a `TaskRegistry`) or `create_task_registry()` returning one; when it
has both, `registry` wins.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import CodeType, ModuleType

from app.errors import TaskModuleError
from app.tasks.registry import TaskRegistry

FACTORY_NAME = "create_task_registry"


def load_task_modules(names: Iterable[str]) -> TaskRegistry:
    """One registry with the tasks of every named module; a task name seen twice is an error."""
    merged = TaskRegistry()
    for listed in names:
        name = listed.strip()
        if not name:  # `TASK_MODULES=a,,b` or a trailing comma
            continue
        registry = _registry_of(name, _import(name))
        try:
            merged.include(registry)
        except ValueError as error:
            raise TaskModuleError(f"task module {name!r}: {error}") from error
    return merged


def _import(name: str) -> ModuleType:
    if names_a_file(name):
        return _import_file(name)
    try:
        return importlib.import_module(name)
    except Exception as error:  # whatever the module's own code raised while importing
        raise _failure(name, error) from error


def names_a_file(name: str) -> bool:
    """Whether a task module's name is a file's path rather than a dotted module name."""
    return name.endswith(".py") or "/" in name or "\\" in name


def _import_file(name: str) -> ModuleType:
    path = Path(name).expanduser().resolve()
    if not path.is_file():
        raise TaskModuleError(f"task module {name!r}: no such file ({path})")
    module_name = _module_name_for(path)
    spec = importlib.util.spec_from_file_location(
        module_name, path, loader=_SourceOnlyLoader(module_name, str(path))
    )
    if spec is None or spec.loader is None:
        raise TaskModuleError(f"task module {name!r}: not a loadable Python file ({path})")
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as `import` does: dataclasses and pickling look modules up.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(module_name, None)
        raise _failure(name, error) from error
    return module


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the file's text on every load, never through `__pycache__`: a cached bytecode
    file is trusted when the source's size and mtime (whole seconds) match, so an edit of the
    same length within a second (`watch`) would run the old code."""

    def get_code(self, fullname: str) -> CodeType:
        return self.source_to_code(self.get_data(self.path), self.path)


def _module_name_for(path: Path) -> str:
    """Unique per file, stable across loads, and a valid identifier whatever the file's name."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    stem = "".join(char if char.isalnum() else "_" for char in path.stem)
    return f"_flow_tasks_{stem}_{digest}"


def _registry_of(name: str, module: ModuleType) -> TaskRegistry:
    registry = getattr(module, "registry", None)
    if registry is None:
        factory = getattr(module, FACTORY_NAME, None)
        if factory is None:
            raise TaskModuleError(
                f"task module {name!r} exposes neither `registry` nor `{FACTORY_NAME}()`"
            )
        try:
            registry = factory()
        except Exception as error:
            raise TaskModuleError(
                f"task module {name!r}: {FACTORY_NAME}() failed: {type(error).__name__}: {error}"
            ) from error
    if not isinstance(registry, TaskRegistry):
        raise TaskModuleError(
            f"task module {name!r} gave a {type(registry).__name__} where a TaskRegistry is needed"
        )
    return registry


def _failure(name: str, error: Exception) -> TaskModuleError:
    return TaskModuleError(
        f"task module {name!r} could not be imported: {type(error).__name__}: {error}"
    )

"""`start_spec` for a version stored before the service wrote it (migration 0011): its source
parsed as the service parses it, but accepting task names and connection types this process
has not loaded (a migration loads no `TASK_MODULES`): what the description holds (inputs,
steps, concurrency) does not depend on them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from app.domain.formats import format_named
from app.dsl.catalog import TaskSpec
from app.dsl.definitions import build_definition
from app.dsl.limits import DefinitionLimits
from app.dsl.loading import load_document
from app.dsl.start_spec import start_spec
from app.tasks.builtins import builtin_registry

# It was accepted once, under whatever limits the service had then.
_NO_LIMITS = DefinitionLimits(10**9, 10.0**12, 10.0**12, 10.0**12)


def described(source: str, format: str) -> dict[str, Any] | None:
    """The description of a stored version, or None when its text cannot be read."""
    try:
        document = load_document(source, format=format_named(format))
        definition = build_definition(
            document, _AnyTask(builtin_registry().catalog()), _Everything(), limits=_NO_LIMITS
        )
    except Exception:  # whatever is wrong with an old text, the upgrade goes on without it
        return None
    return start_spec(definition)


class _AnyTask(Mapping[str, TaskSpec]):
    """The built-in tasks as they are, and any other name as a task taking any parameter."""

    def __init__(self, known: Mapping[str, TaskSpec]) -> None:
        self.known = known

    def __getitem__(self, name: str) -> TaskSpec:
        return self.known.get(name) or TaskSpec(name, accepts_any_params=True)

    def __iter__(self) -> Iterator[str]:
        return iter(self.known)

    def __len__(self) -> int:
        return len(self.known)


class _Everything(Collection[str]):
    """Every connection type (their plugins are not loaded here)."""

    def __contains__(self, _: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

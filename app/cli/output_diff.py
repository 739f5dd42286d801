"""What changed in a flow's outputs between two runs (`watch`), as a reader wants to see it.

Objects are compared key by key, down to the values that differ, so a changed field deep in
an output is named by its path (`user.address.city`) rather than by the whole output; any
other value (a list, a number, text) is compared whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rich.text import Text


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class OutputChange:
    kind: ChangeKind
    path: str
    before: Any = None  # absent for an added value
    after: Any = None  # absent for a removed value


def output_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], path: str = ""
) -> list[OutputChange]:
    """The differences from `before` to `after`: keys in `after`'s order, then removed ones."""
    changes: list[OutputChange] = []
    for key, value in after.items():
        where = _join(path, key)
        if key not in before:
            changes.append(OutputChange(ChangeKind.ADDED, where, after=value))
            continue
        old = before[key]
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            changes.extend(output_changes(old, value, where))
        elif not _same(old, value):
            changes.append(OutputChange(ChangeKind.CHANGED, where, old, value))
    changes.extend(
        OutputChange(ChangeKind.REMOVED, _join(path, key), before=value)
        for key, value in before.items()
        if key not in after
    )
    return changes


def render_changes(changes: list[OutputChange]) -> Text:
    """A line per change: `+ path: value`, `- path: value`, `~ path: before → after`."""
    lines = Text()
    for change in changes:
        if change.kind is ChangeKind.ADDED:
            lines.append(f"  + {change.path}: {_shown(change.after)}\n", style="green")
        elif change.kind is ChangeKind.REMOVED:
            lines.append(f"  - {change.path}: {_shown(change.before)}\n", style="red")
        else:
            lines.append(f"  ~ {change.path}: ", style="yellow")
            lines.append(_shown(change.before), style="red")
            lines.append(" → ", style="yellow")
            lines.append(f"{_shown(change.after)}\n", style="green")
    lines.rstrip()
    return lines


def _same(old: Any, new: Any) -> bool:
    """Equal as JSON shows them: `1` and `true`, or `1` and `1.0`, read as a change."""
    try:
        return _canonical(old) == _canonical(new)
    except TypeError:  # keys of mixed types cannot be sorted: outputs have text keys
        return bool(old == new)


def _canonical(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)


def _join(path: str, key: Any) -> str:
    name = str(key)
    if name.isidentifier():
        return f"{path}.{name}" if path else name
    return f"{path}[{json.dumps(name, ensure_ascii=False)}]"


def _shown(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)

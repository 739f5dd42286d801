"""Tasks that hand back values no store can hold, or values drivers give (TASK_MODULES)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from app.domain.storable import MAX_DEPTH
from app.tasks import TaskRegistry

registry = TaskRegistry()


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# Each of these, as the `name` of a fourth row, makes a step's outputs unstorable.
UNSTORABLE: dict[str, Any] = {
    "nan": float("nan"),
    "infinity": float("inf"),
    "surrogate": "\ud800",
    "nul": "a\x00b",
    "int_key": {1: "one"},
    "object": object(),
    "deep": nested(MAX_DEPTH),
}
DRIVER_VALUES = {
    "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    "price": Decimal("2.50"),
    "id": UUID(int=7),
    "raw": b"caf\xc3\xa9",
    "pair": (1, 2),
}
DRIVER_VALUES_STORED = {
    "at": "2026-01-02T03:04:05+00:00",
    "price": 2.5,
    "id": "00000000-0000-0000-0000-000000000007",
    "raw": "café",
    "pair": [1, 2],
}


@registry.register("Unstorable", description="Rows whose fourth holds an unstorable name")
def unstorable(kind: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [{"name": "ok"} for _ in range(3)]
    rows.append({"name": UNSTORABLE[kind]})
    return {"rows": rows}


@registry.register("Nested", description="Outputs nested `depth` levels deep, in all")
def nested_outputs(depth: int) -> dict[str, Any]:
    return {"v": nested(depth - 1)}


@registry.register("DriverValues", description="Values as database drivers hand them over")
def driver_values() -> dict[str, Any]:
    return dict(DRIVER_VALUES)


@registry.register("Text", description="A text of `size` characters")
def text(size: int) -> dict[str, Any]:
    return {"text": "x" * size}


@registry.register("Raise", description="Fail with the message given")
def raise_(message: str) -> dict[str, Any]:
    raise RuntimeError(message)

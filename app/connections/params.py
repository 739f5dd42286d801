"""Reading one connection's parameters: known names only, typed values, clear complaints.

Values may arrive as strings when a flow takes them from the environment
(`pool_size: ${env.POOL_SIZE}`), so numbers and booleans written as text are accepted.
Every complaint is an `InvalidConnectionError` (a `ConnectionFailedError` that is not retried)
naming the connection and the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from app.errors import InvalidConnectionError

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class ConnectionParams:
    def __init__(self, connection: str, params: Mapping[str, Any], known: Collection[str]) -> None:
        self.connection = connection
        self._params = {key: value for key, value in params.items() if key != "type"}
        unknown = sorted(set(self._params) - set(known))
        if unknown:
            raise self.problem(
                f"unknown parameter {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(sorted(known))})"
            )

    def problem(self, message: str) -> InvalidConnectionError:
        return InvalidConnectionError(f"connection {self.connection!r}: {message}")

    def text(self, key: str) -> str:
        """A required, non-empty string."""
        value = self._params.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.problem(f"{key!r} is required and must be a non-empty string")
        return value.strip()

    def integer(self, key: str, default: int, *, minimum: int) -> int:
        value = self.optional_integer(key, minimum=minimum)
        return default if value is None else value

    def size(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        """A pool size, at most CONNECTION_MAX_POOL_SIZE (`maximum`)."""
        size = self.integer(key, min(default, maximum), minimum=minimum)
        if size > maximum:
            raise self.problem(
                f"{key!r} is {size}, more than CONNECTION_MAX_POOL_SIZE ({maximum}) allows"
            )
        return size

    def optional_integer(self, key: str, *, minimum: int) -> int | None:
        value = self._params.get(key)
        if value is None:
            return None
        number = _as_integer(value)
        if number is None or number < minimum:
            raise self.problem(f"{key!r} must be an integer >= {minimum}, got {value!r}")
        return number

    def seconds(self, key: str, default: float) -> float:
        value = self.optional_seconds(key)
        return default if value is None else value

    def optional_seconds(self, key: str) -> float | None:
        value = self._params.get(key)
        if value is None:
            return None
        number = _as_number(value)
        if number is None or not math.isfinite(number) or number <= 0:
            raise self.problem(f"{key!r} must be a number of seconds > 0, got {value!r}")
        return number

    def flag(self, key: str, default: bool) -> bool:
        value = self._params.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise self.problem(f"{key!r} must be true or false, got {value!r}")


def _as_integer(value: object) -> int | None:
    if isinstance(value, bool):  # a bool is an int to Python, never to a flow author
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    return None


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None

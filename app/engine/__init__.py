"""The engine: runs a flow definition's steps in order, with retries, timeouts and fan-out.

Its names are imported on first use (PEP 562): importing one module of the engine, such as
`app.engine.store` (the port a store implements), must not import the executor and with it the
tasks and connections.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time `__getattr__` imports them
    from app.engine.executor import FlowExecutor
    from app.engine.run import RunResult
    from app.engine.store import RunStore

__all__ = ["FlowExecutor", "RunResult", "RunStore"]

_HOMES = {
    "FlowExecutor": "app.engine.executor",
    "RunResult": "app.engine.run",
    "RunStore": "app.engine.store",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next lookup finds it without coming here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

"""The built-in tasks of the flow language, gathered into one registry.

Importing this package never imports a database driver (asyncpg, redis): the postgres and redis
built-ins import theirs when they run, so a missing driver fails only the steps that need it.
"""

from __future__ import annotations

from app.tasks.builtins import core, http, postgres, redis
from app.tasks.registry import TaskRegistry


def builtin_registry() -> TaskRegistry:
    """A new registry holding every built-in task; callers may add their own tasks to it."""
    registry = TaskRegistry()
    for module in (core, http, postgres, redis):
        registry.include(module.registry)
    return registry

"""`TaskRegistry`: named Python functions that steps run.

Arguments are bound by name from the step's inputs (custom tasks) or parameters (built-ins).
A parameter named `connection` receives the step's connection, one named `context` the
`TaskContext`. Sync functions run in a worker thread so they never block the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from app.dsl.catalog import TaskSpec
from app.dsl.sql_text import sql_path
from app.errors import NonRetryableError, UnknownTaskError
from app.tasks.context import TaskContext

TaskFunction = Callable[..., Any]
F = TypeVar("F", bound=TaskFunction)

INJECTED_PARAMS = frozenset({"connection", "context"})


@dataclass(frozen=True)
class RegisteredTask:
    spec: TaskSpec
    function: TaskFunction
    is_async: bool
    parameters: frozenset[str]  # every named parameter, injected ones included

    @property
    def name(self) -> str:
        return self.spec.name

    async def invoke(
        self,
        arguments: Mapping[str, Any],
        *,
        context: TaskContext,
        connection: Any = None,
        offered: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Call the function and return its outputs.

        `offered` values are passed only to functions with a parameter of that name (the
        condition-graph format offers `data` and `inputs`).
        """
        kwargs = dict(arguments)
        if "connection" in self.parameters:
            kwargs["connection"] = connection
        if "context" in self.parameters:
            kwargs["context"] = context
        for name, value in (offered or {}).items():
            if name in self.parameters and name not in kwargs:
                kwargs[name] = value
        if self.is_async:
            result = await self.function(**kwargs)
        else:
            result = await asyncio.to_thread(self.function, **kwargs)
            if inspect.isawaitable(result):  # a sync wrapper that hands back a coroutine
                result = await result
        return _as_outputs(self.name, result)


class TaskRegistry:
    """A set of tasks by name. Use `register` as a decorator."""

    def __init__(self) -> None:
        self._tasks: dict[str, RegisteredTask] = {}

    def register(
        self,
        name: str | None = None,
        *,
        description: str = "",
        outputs: Iterable[str] | None = None,
        **spec_fields: Any,
    ) -> Callable[[F], F]:
        def decorate(function: F) -> F:
            self.add(function, name, description=description, outputs=outputs, **spec_fields)
            return function

        return decorate

    def add(
        self,
        function: TaskFunction,
        name: str | None = None,
        *,
        description: str = "",
        outputs: Iterable[str] | None = None,
        **spec_fields: Any,
    ) -> RegisteredTask:
        task_name = name or function.__name__
        if task_name in self._tasks:
            raise ValueError(f"a task named {task_name!r} is already registered")
        task = _describe(task_name, function, description, outputs, spec_fields)
        self._tasks[task_name] = task
        return task

    def include(self, other: TaskRegistry) -> None:
        """Add every task of `other`; a name registered twice is an error."""
        for task in other._tasks.values():
            if task.name in self._tasks:
                raise ValueError(f"a task named {task.name!r} is already registered")
            self._tasks[task.name] = task

    def get(self, name: str) -> RegisteredTask:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTaskError(f"no task is registered under the name {name!r}") from None

    def catalog(self) -> dict[str, TaskSpec]:
        return {name: task.spec for name, task in self._tasks.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)


def _describe(
    name: str,
    function: TaskFunction,
    description: str,
    outputs: Iterable[str] | None,
    spec_fields: Mapping[str, Any],
) -> RegisteredTask:
    signature = inspect.signature(function)
    required: set[str] = set()
    optional: set[str] = set()
    names: set[str] = set()
    any_params = False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            any_params = True
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ValueError(
                f"task {name!r}: parameter {parameter.name!r} is positional-only, but task "
                "arguments are bound by name"
            )
        names.add(parameter.name)
        if parameter.name in INJECTED_PARAMS:
            continue
        target = required if parameter.default is inspect.Parameter.empty else optional
        target.add(parameter.name)
    if "sql_text" in spec_fields:
        declared = _sql_text(name, spec_fields["sql_text"], None if any_params else names)
        spec_fields = {**spec_fields, "sql_text": declared}
    doc = inspect.getdoc(function) or ""
    spec = TaskSpec(
        name=name,
        description=description or (doc.splitlines()[0] if doc else ""),
        required_params=frozenset(required),
        optional_params=frozenset(optional),
        accepts_any_params=any_params,
        outputs=frozenset(outputs) if outputs is not None else None,
        **spec_fields,
    )
    return RegisteredTask(
        spec=spec,
        function=function,
        is_async=inspect.iscoroutinefunction(function)
        or inspect.iscoroutinefunction(getattr(function, "__call__", None)),  # noqa: B004
        parameters=frozenset(names),
    )


def _sql_text(name: str, declared: Iterable[str], parameters: set[str] | None) -> frozenset[str]:
    """The parameters (or paths into them) a task declares as SQL text, each checked to start
    at one of its `parameters` (any name, for a function taking **kwargs): a misspelt
    declaration would protect nothing."""
    paths = frozenset([declared] if isinstance(declared, str) else declared)
    for path in paths:
        parts = sql_path(path)
        head = parts[0] if parts else "[]"
        named = head in parameters if parameters is not None else head != "[]"
        if head in INJECTED_PARAMS or not named:
            raise ValueError(f"task {name!r}: SQL text {path!r} is not in one of its parameters")
    return paths


def _as_outputs(name: str, result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if isinstance(result, Mapping):
        return dict(result)
    raise NonRetryableError(
        f"task {name!r} returned {type(result).__name__}; a task must return a dict of outputs"
    )

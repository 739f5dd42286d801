"""TaskRegistry: registering functions, describing them as TaskSpecs, and invoking them."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from app.errors import NonRetryableError, UnknownTaskError
from app.tasks import TaskContext, TaskRegistry


def test_register_uses_the_given_name_and_description() -> None:
    registry = TaskRegistry()

    @registry.register("Greet", description="Say hello")
    async def greet(name: str) -> dict[str, Any]:
        return {"greeting": f"hello {name}"}

    assert "Greet" in registry
    assert list(registry) == ["Greet"]
    spec = registry.get("Greet").spec
    assert spec.name == "Greet"
    assert spec.description == "Say hello"
    assert not spec.builtin


def test_register_defaults_to_the_function_name_and_first_docstring_line() -> None:
    registry = TaskRegistry()

    @registry.register()
    def shout(text: str) -> dict[str, Any]:
        """Upper-case the text.

        More words that are not part of the description.
        """
        return {"text": text.upper()}

    assert registry.get("shout").spec.description == "Upper-case the text."


def test_register_returns_the_function_unchanged() -> None:
    registry = TaskRegistry()

    def plain(x: int) -> dict[str, Any]:
        return {"x": x}

    assert registry.register("Plain")(plain) is plain


def test_spec_params_are_derived_from_the_signature() -> None:
    registry = TaskRegistry()

    @registry.register("Task", outputs=["total"])
    async def task(
        a: int, b: int = 2, *, c: str, d: str = "x", connection: Any, context: TaskContext
    ) -> dict[str, Any]:
        return {}

    spec = registry.get("Task").spec
    assert spec.required_params == {"a", "c"}
    assert spec.optional_params == {"b", "d"}
    assert spec.params == {"a", "b", "c", "d"}  # injected ones are not step params
    assert not spec.accepts_any_params
    assert spec.outputs == frozenset({"total"})


def test_a_function_taking_kwargs_accepts_any_params() -> None:
    registry = TaskRegistry()

    @registry.register("Loose")
    def loose(required: int, **rest: Any) -> dict[str, Any]:
        return rest

    spec = registry.get("Loose").spec
    assert spec.accepts_any_params
    assert spec.required_params == {"required"}
    assert spec.outputs is None  # unknown until it runs


def test_extra_register_arguments_go_into_the_spec() -> None:
    registry = TaskRegistry()

    @registry.register(
        "Fetch", builtin=True, connection_types=frozenset({"http"}), connection_required=True
    )
    async def fetch(connection: Any) -> dict[str, Any]:
        return {}

    spec = registry.get("Fetch").spec
    assert spec.builtin
    assert spec.connection_types == {"http"}
    assert spec.connection_required


def test_a_task_declares_which_parameters_hold_sql_text() -> None:
    registry = TaskRegistry()

    @registry.register("Report", sql_text=["sql", "parts[].sql"])
    async def report(sql: str, parts: list[Any], connection: Any) -> dict[str, Any]:
        return {}

    assert registry.get("Report").spec.sql_text == {"sql", "parts[].sql"}


@pytest.mark.parametrize("declared", ["sqll", "connection", "[].sql", ""])
def test_sql_text_outside_the_parameters_is_refused_at_registration(declared: str) -> None:
    registry = TaskRegistry()

    with pytest.raises(ValueError, match="is not in one of its parameters"):
        registry.add(lambda sql, connection: {}, "Report", sql_text=[declared])


def test_a_task_taking_any_parameters_may_declare_any_as_sql_text() -> None:
    registry = TaskRegistry()

    registry.add(lambda **kwargs: {}, "Report", sql_text=["sql"])

    assert registry.get("Report").spec.sql_text == {"sql"}
    with pytest.raises(ValueError, match="is not in one of its parameters"):
        registry.add(lambda **kwargs: {}, "Other", sql_text=["[].sql"])


async def test_async_function_is_awaited_with_arguments_bound_by_name(
    context: TaskContext,
) -> None:
    registry = TaskRegistry()

    @registry.register("Divide")
    async def divide(numerator: float, denominator: float) -> dict[str, Any]:
        return {"quotient": numerator / denominator}

    outputs = await registry.get("Divide").invoke(
        {"denominator": 4, "numerator": 10}, context=context
    )
    assert outputs == {"quotient": 2.5}


async def test_sync_function_runs_in_a_thread_other_than_the_event_loops(
    context: TaskContext,
) -> None:
    registry = TaskRegistry()

    @registry.register("WhereAmI")
    def where_am_i() -> dict[str, Any]:
        return {"thread": threading.get_ident()}

    loop_thread = threading.get_ident()
    outputs = await registry.get("WhereAmI").invoke({}, context=context)
    assert outputs["thread"] != loop_thread


async def test_sync_function_does_not_block_the_event_loop(context: TaskContext) -> None:
    registry = TaskRegistry()
    entered = threading.Event()
    release = threading.Event()

    @registry.register("Blocking")
    def blocking() -> dict[str, Any]:
        entered.set()
        return {"released": release.wait(timeout=10)}

    invocation = asyncio.create_task(registry.get("Blocking").invoke({}, context=context))
    # The loop keeps running while the task blocks its thread: we can wait for it here.
    assert await asyncio.to_thread(entered.wait, 10)
    release.set()
    assert await invocation == {"released": True}


async def test_connection_and_context_are_injected_when_asked_for(
    context: TaskContext,
) -> None:
    registry = TaskRegistry()
    connection = object()

    @registry.register("Both")
    async def both(x: int, connection: Any, context: TaskContext) -> dict[str, Any]:
        return {"x": x, "connection": connection, "context": context}

    outputs = await registry.get("Both").invoke({"x": 1}, context=context, connection=connection)
    assert outputs == {"x": 1, "connection": connection, "context": context}


async def test_connection_and_context_are_not_passed_to_functions_without_them(
    context: TaskContext,
) -> None:
    registry = TaskRegistry()

    @registry.register("Neither")
    async def neither(x: int) -> dict[str, Any]:
        return {"x": x}

    outputs = await registry.get("Neither").invoke({"x": 1}, context=context, connection=object())
    assert outputs == {"x": 1}


async def test_a_missing_connection_is_injected_as_none(context: TaskContext) -> None:
    registry = TaskRegistry()

    @registry.register("Optional")
    async def optional(connection: Any) -> dict[str, Any]:
        return {"connection": connection}

    assert await registry.get("Optional").invoke({}, context=context) == {"connection": None}


async def test_offered_values_reach_only_functions_that_name_them(context: TaskContext) -> None:
    registry = TaskRegistry()

    @registry.register("WantsData")
    def wants_data(data: dict[str, Any]) -> dict[str, Any]:
        return {"seen": data}

    @registry.register("WantsNothing")
    def wants_nothing() -> dict[str, Any]:
        return {"ok": True}

    offered = {"data": {"a": 1}, "inputs": {"b": 2}}
    assert await registry.get("WantsData").invoke({}, context=context, offered=offered) == {
        "seen": {"a": 1}
    }
    assert await registry.get("WantsNothing").invoke({}, context=context, offered=offered) == {
        "ok": True
    }


async def test_an_explicit_argument_wins_over_an_offered_value(context: TaskContext) -> None:
    registry = TaskRegistry()

    @registry.register("Echo")
    def echo(data: str) -> dict[str, Any]:
        return {"data": data}

    task = registry.get("Echo")
    outputs = await task.invoke({"data": "explicit"}, context=context, offered={"data": "offer"})
    assert outputs == {"data": "explicit"}


async def test_none_return_means_no_outputs(context: TaskContext) -> None:
    registry = TaskRegistry()

    @registry.register("Nothing")
    def nothing() -> None:
        return None

    assert await registry.get("Nothing").invoke({}, context=context) == {}


@pytest.mark.parametrize("result", [[1, 2], "text", 42])
async def test_a_non_dict_return_is_a_non_retryable_error(
    context: TaskContext, result: object
) -> None:
    registry = TaskRegistry()

    @registry.register("Wrong")
    def wrong() -> object:
        return result

    with pytest.raises(NonRetryableError, match="'Wrong' returned"):
        await registry.get("Wrong").invoke({}, context=context)


async def test_errors_raised_by_the_function_propagate_unchanged(context: TaskContext) -> None:
    registry = TaskRegistry()

    @registry.register("Broken")
    async def broken() -> dict[str, Any]:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await registry.get("Broken").invoke({}, context=context)


def test_a_name_registered_twice_is_refused() -> None:
    registry = TaskRegistry()

    @registry.register("Twice")
    def first() -> None:
        pass

    with pytest.raises(ValueError, match="'Twice' is already registered"):

        @registry.register("Twice")
        def second() -> None:
            pass

    assert registry.get("Twice").function is first


def test_include_merges_registries_and_refuses_duplicates() -> None:
    mine, theirs, clashing = TaskRegistry(), TaskRegistry(), TaskRegistry()
    mine.register("A")(lambda: None)
    theirs.register("B")(lambda: None)
    clashing.register("A")(lambda: None)

    mine.include(theirs)
    assert sorted(mine) == ["A", "B"]
    assert sorted(mine.catalog()) == ["A", "B"]
    with pytest.raises(ValueError, match="'A' is already registered"):
        mine.include(clashing)


def test_an_unknown_name_is_an_unknown_task_error() -> None:
    with pytest.raises(UnknownTaskError, match="'Nope'"):
        TaskRegistry().get("Nope")

"""A definition's `concurrency: {limit, key}`: read, bounded, refused where it misfits, and
its key rendered from a run's inputs without running code."""

from __future__ import annotations

import pytest

from app.connections.manager import ConnectionManager
from app.domain.concurrency import MAX_CONCURRENCY_KEY_LENGTH, MAX_CONCURRENCY_LIMIT
from app.dsl.definitions import parse_definition
from app.dsl.models import Concurrency, FlowDefinition
from app.errors import DefinitionError, InputValidationError, Problem
from app.tasks.builtins import builtin_registry

CATALOG = builtin_registry().catalog()
INPUTS = "inputs:\n  - {name: tenant, type: string}\n  - {name: size, type: integer}\n"
STEPS = "steps:\n  - log: {id: hello, message: hi}\n"


def parse(source: str) -> FlowDefinition:
    return parse_definition(source, CATALOG, ConnectionManager().types)


def problems_of(source: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse(source)
    return list(caught.value.problems)


def with_concurrency(concurrency: str) -> str:
    return f"flow: Limited\n{INPUTS}concurrency: {concurrency}\n{STEPS}"


def concurrency_of(concurrency: str) -> Concurrency:
    found = parse(with_concurrency(concurrency)).concurrency
    assert found is not None
    return found


def test_a_limit_without_a_key_limits_the_flow() -> None:
    concurrency = concurrency_of("{limit: 3}")

    assert (concurrency.limit, concurrency.key) == (3, None)
    assert concurrency.key_for({"tenant": "acme"}) is None


def test_a_flow_without_concurrency_has_no_limit() -> None:
    assert parse(f"flow: Free\n{STEPS}").concurrency is None


def test_a_key_is_rendered_from_the_run_inputs() -> None:
    concurrency = concurrency_of('{limit: 1, key: "tenant-${inputs.tenant}"}')

    assert concurrency.key_for({"tenant": "acme"}) == "tenant-acme"


def test_a_key_that_is_not_a_string_value_is_written_as_text() -> None:
    concurrency = concurrency_of('{limit: 1, key: "${inputs.size}"}')

    assert concurrency.key_for({"size": 5}) == "5"


def test_the_same_definition_in_json_reads_the_same() -> None:
    source = (
        '{"flow": "Limited", "inputs": [{"name": "tenant"}], '
        '"concurrency": {"limit": 2, "key": "${inputs.tenant}"}, '
        '"steps": [{"log": {"id": "hello", "message": "hi"}}]}'
    )

    concurrency = parse(source).concurrency

    assert concurrency is not None
    assert concurrency.limit == 2
    assert concurrency.key_for({"tenant": "x"}) == "x"


@pytest.mark.parametrize(
    ("concurrency", "loc", "expected"),
    [
        ("{limit: 0}", ("concurrency", "limit"), "must be at least 1"),
        (
            f"{{limit: {MAX_CONCURRENCY_LIMIT + 1}}}",
            ("concurrency", "limit"),
            f"must be at most {MAX_CONCURRENCY_LIMIT:,}",
        ),
        ("{limit: two}", ("concurrency", "limit"), "must be an integer"),
        ("{limit: true}", ("concurrency", "limit"), "must be an integer"),
        ('{key: "${inputs.tenant}"}', ("concurrency",), "needs `limit`"),
        ("{limit: 1, every: 2}", ("concurrency", "every"), "unknown field 'every'"),
        ("3", ("concurrency",), "must be a mapping"),
        ("{limit: 1, key: [a]}", ("concurrency", "key"), "must be a string"),
        ('{limit: 1, key: "${inputs.nope}"}', ("concurrency", "key"), "unknown input 'nope'"),
        ('{limit: 1, key: "${hello.x}"}', ("concurrency", "key"), "may only read `inputs`"),
        ('{limit: 1, key: "${env.HOME}"}', ("concurrency", "key"), "may only read `inputs`"),
        ('{limit: 1, key: "${inputs.tenant"}', ("concurrency", "key"), "invalid expression"),
    ],
)
def test_a_misfit_concurrency_is_refused_at_its_place(
    concurrency: str, loc: tuple[str, ...], expected: str
) -> None:
    (problem,) = problems_of(with_concurrency(concurrency))

    assert problem.loc == loc
    assert expected in problem.msg


def test_a_key_that_fails_to_render_is_an_input_error_naming_the_key() -> None:
    concurrency = concurrency_of('{limit: 1, key: "${inputs.tenant.name}"}')

    with pytest.raises(InputValidationError, match=r"concurrency\.key cannot be rendered"):
        concurrency.key_for({"tenant": "acme"})


def test_a_key_longer_than_the_limit_is_refused() -> None:
    concurrency = concurrency_of('{limit: 1, key: "${inputs.tenant}"}')
    long = "x" * (MAX_CONCURRENCY_KEY_LENGTH + 1)

    with pytest.raises(InputValidationError, match=f"at most {MAX_CONCURRENCY_KEY_LENGTH}"):
        concurrency.key_for({"tenant": long})

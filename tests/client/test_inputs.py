"""`flow_manager.start_run` judges inputs as the service does (`app.dsl.inputs`): the same
values accepted, coerced to the same JSON (an integer stays an integer, a float a float), the
same defaults, and the same problems for the rest."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest

from app.client import start_run
from app.dsl.inputs import validate_inputs
from app.engine.executor import FlowExecutor
from app.errors import InputValidationError
from tests.api.support import register

TYPED_YAML = """\
flow: Typed
inputs:
  r: {type: integer, required: true}
  s: {type: string}
  i: {type: integer}
  n: {type: number}
  b: {type: boolean}
  o: {type: object}
  a: {type: array}
  x: {type: any}
  d: {type: number, default: 2.5}
  t: {type: string, default: hello}
steps:
  - set: {id: one, values: {n: 1}}
"""
CASES: list[dict[str, Any]] = [
    {"r": 1},
    {"r": "42"},
    {"r": " -7 "},
    {"r": "+5"},
    {"r": 3.0},
    {"r": 3.5},
    {"r": True},
    {"r": None},
    {"r": "1e3"},
    {"r": "12345678901234567890123"},
    {"r": 1, "i": None, "s": None, "d": None},
    {"r": 1, "n": "1.5"},
    {"r": 1, "n": "1e3"},
    {"r": 1, "n": " 2 "},
    {"r": 1, "n": "5."},
    {"r": 1, "n": ".5"},
    {"r": 1, "n": "0.1"},
    {"r": 1, "n": "100000.0"},
    {"r": 1, "n": "1e-400"},
    {"r": 1, "n": "1e400"},
    {"r": 1, "n": "nan"},
    {"r": 1, "n": "inf"},
    {"r": 1, "n": "abc"},
    {"r": 1, "n": 5},
    {"r": 1, "n": 5.0},
    {"r": 1, "n": 0.25},
    {"r": 1, "n": False},
    {"r": 1, "b": "TRUE"},
    {"r": 1, "b": " false "},
    {"r": 1, "b": "yes"},
    {"r": 1, "b": 1},
    {"r": 1, "b": True},
    {"r": 1, "s": 5},
    {"r": 1, "s": "it's"},
    {"r": 1, "s": ["x"]},
    {"r": 1, "o": {"a": [1, None]}},
    {"r": 1, "o": [1]},
    {"r": 1, "a": [1, "two", None]},
    {"r": 1, "a": 7},
    {"r": 1, "x": {"k": [1, None, True]}},
    {"r": 1, "t": "given"},
    {"r": 1, "zz": 1},
    {"s": 1.5, "b": 2},
]


@pytest.fixture
async def typed(client: httpx.AsyncClient) -> None:
    await register(client, TYPED_YAML)


def as_the_service(given: dict[str, Any]) -> Any:
    """What the service stores for these inputs (read back as JSON), or its problems."""
    definition = FlowExecutor().parse(TYPED_YAML).definition
    try:
        values = validate_inputs(definition.inputs, given, strict=definition.strict_inputs)
    except InputValidationError as error:
        return [(problem.loc, problem.msg, problem.type) for problem in error.problems]
    return json.loads(json.dumps(values))


async def as_sql(connection: asyncpg.Connection, given: dict[str, Any]) -> Any:
    """What `start_run` stores for these inputs, or its problems; nothing is kept."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        run_id = await start_run(connection, "Typed", given)
        stored = await connection.fetchval(
            "SELECT inputs::text FROM flow_runs WHERE id = $1", run_id
        )
    except InputValidationError as error:
        return [(problem.loc, problem.msg, problem.type) for problem in error.problems]
    finally:
        await transaction.rollback()
    return json.loads(stored)


@pytest.mark.usefixtures("typed")
async def test_inputs_are_judged_and_stored_as_the_service_does(
    connection: asyncpg.Connection,
) -> None:
    for given in CASES:
        expected = as_the_service(given)

        stored = await as_sql(connection, given)

        # Compared as JSON text: 5 and 5.0 are equal in Python, not in what a run reads.
        assert json.dumps(stored, sort_keys=True) == json.dumps(expected, sort_keys=True), given

"""Built-in PostgreSQL tasks: `pg_query`, `pg_execute`, `pg_transaction`.

Each receives a pooled asyncpg connection. SQL is always parameterised (`$1..$n`): values
travel separately from the SQL text, never spliced into it. Every query runs as a prepared
statement, which yields both its rows and its status (`"UPDATE 3"`) and refuses several
statements in one string. Errors from PostgreSQL keep their asyncpg type (`UniqueViolationError`,
...) so a step's `retry_on` can name them; a badly shaped step raises `NonRetryableError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.errors import NonRetryableError
from app.tasks.registry import TaskRegistry

if TYPE_CHECKING:
    from asyncpg import Connection

registry = TaskRegistry()

_QUERY_KEYS = frozenset({"query", "params"})
_POSTGRES = {
    "builtin": True,
    "connection_types": frozenset({"postgres"}),
    "connection_required": True,
}
# The SQL is written in the definition; `${...}` in it is refused at validation (its values go
# in `params`), so no value is ever spliced into SQL text.
_SQL_IN_QUERY = frozenset({"query"})


@dataclass(frozen=True)
class _Statement:
    query: str
    params: tuple[Any, ...]


@dataclass(frozen=True)
class _Outcome:
    rows: list[dict[str, Any]]
    status: str

    @property
    def row_count(self) -> int:
        """The count that ends the status: `"INSERT 0 2"` -> 2; `"CREATE TABLE"` -> 0."""
        last = self.status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0


@registry.register(
    "pg_query",
    outputs=["rows", "row_count"],
    description="Run a query; rows come back as mappings of column to value",
    sql_text=_SQL_IN_QUERY,
    **_POSTGRES,
)
async def pg_query(
    query: str, params: list[Any] | None = None, *, connection: Connection
) -> dict[str, Any]:
    outcome = await _run(connection, _statement(query, params, where=""))
    return {"rows": outcome.rows, "row_count": len(outcome.rows)}


@registry.register(
    "pg_execute",
    outputs=["result", "row_count"],
    description="Run a statement; returns its status (e.g. 'UPDATE 1') and the rows it touched",
    sql_text=_SQL_IN_QUERY,
    **_POSTGRES,
)
async def pg_execute(
    query: str, params: list[Any] | None = None, *, connection: Connection
) -> dict[str, Any]:
    outcome = await _run(connection, _statement(query, params, where=""))
    return {"result": outcome.status, "row_count": outcome.row_count}


@registry.register(
    "pg_transaction",
    outputs=["results"],
    description="Run several statements in one transaction: all of them or none",
    sql_text=frozenset({"queries[].query"}),
    **_POSTGRES,
)
async def pg_transaction(
    queries: list[Mapping[str, Any]], *, connection: Connection
) -> dict[str, Any]:
    statements = _statements(queries)  # all checked before anything runs
    results = []
    async with connection.transaction():
        for statement in statements:
            outcome = await _run(connection, statement)
            results.append(
                {"rows": outcome.rows, "row_count": outcome.row_count, "result": outcome.status}
            )
    return {"results": results}


async def _run(connection: Connection, statement: _Statement) -> _Outcome:
    prepared = await connection.prepare(statement.query)
    records = await prepared.fetch(*statement.params)
    return _Outcome([dict(record) for record in records], prepared.get_statusmsg() or "")


def _statements(queries: object) -> list[_Statement]:
    if not isinstance(queries, list) or not queries:
        raise NonRetryableError(
            f"'queries' must be a non-empty list of {{query, params}}, got {_describe(queries)}"
        )
    statements = []
    for index, item in enumerate(queries):
        where = f"queries[{index}]."
        if not isinstance(item, Mapping):
            raise NonRetryableError(
                f"queries[{index}] must be a mapping with 'query' and optional 'params', "
                f"got {_describe(item)}"
            )
        unknown = sorted(set(item) - _QUERY_KEYS, key=str)
        if unknown:
            raise NonRetryableError(
                f"queries[{index}] has unknown key(s) {', '.join(map(repr, unknown))} "
                "(allowed: 'query', 'params')"
            )
        statements.append(_statement(item.get("query"), item.get("params"), where=where))
    return statements


def _statement(query: object, params: object, *, where: str) -> _Statement:
    if not isinstance(query, str) or not query.strip():
        raise NonRetryableError(
            f"'{where}query' must be a non-empty string, got {_describe(query)}"
        )
    if params is None:
        return _Statement(query, ())
    if not isinstance(params, list | tuple):
        raise NonRetryableError(
            f"'{where}params' must be a list of values for $1..$n, got {_describe(params)}"
        )
    return _Statement(query, tuple(params))


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"

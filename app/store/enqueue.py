"""Starting runs in the application's own transaction on PostgreSQL (transactional enqueue).

One call to the SQL function the migrations install (`flow_manager.start_run`, or
`start_runs` for many runs in one round trip: `app/store/alembic/versions/0011_sql_start_run.py`)
on the connection the caller hands over, inside whatever transaction it has open: the run
exists if and only if that transaction commits, and the workers are notified when it does.
The function checks the inputs before it writes anything; its refusals, which abort the
caller's transaction, come back as the types of `app.errors` (`refusal_of`).

The connection is an asyncpg `Connection` (or `Pool`), a SQLAlchemy `AsyncConnection` or
`AsyncSession`, or, with `start_run_sync`/`start_runs_sync`, a SQLAlchemy `Connection` or
`Session`. Neither driver is imported here: the caller's object is used as it is, so the
module costs an application nothing it does not already load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.domain.storable import compact_json, json_data
from app.errors import (
    FlowManagerError,
    InputValidationError,
    NotStartableFromSqlError,
    Problem,
    RequestError,
    UnknownFlowError,
    UnknownUserError,
    UnknownVersionError,
)

# The inputs travel as text and become JSONB in the statement: a connection whose JSONB codec
# was customised (asyncpg's `set_type_codec`) encodes them no differently.
START_RUN = (
    "SELECT flow_manager.start_run($1::text, $2::text::jsonb, $3::text, $4::integer, "
    "$5::integer, $6::text)"
)
START_RUNS = (
    "SELECT flow_manager.start_runs($1::text, $2::text::jsonb, $3::integer, $4::integer, $5::text)"
)
# The same calls for SQLAlchemy's `text()`, with named parameters.
_NAMED_START_RUN = (
    "SELECT flow_manager.start_run(CAST(:flow AS text), CAST(CAST(:inputs AS text) AS jsonb), "
    "CAST(:idempotency_key AS text), CAST(:priority AS integer), CAST(:version AS integer), "
    "CAST(:started_by AS text))"
)
_NAMED_START_RUNS = (
    "SELECT flow_manager.start_runs(CAST(:flow AS text), CAST(CAST(:inputs AS text) AS jsonb), "
    "CAST(:priority AS integer), CAST(:version AS integer), CAST(:started_by AS text))"
)

# The SQLSTATEs the function raises, and the error each one is.
REFUSALS: dict[str, type[FlowManagerError]] = {
    "FM001": UnknownFlowError,
    "FM002": UnknownVersionError,
    "FM003": UnknownUserError,
    "FM010": InputValidationError,  # DETAIL: the problems, as JSON
    "FM011": RequestError,
    "FM020": NotStartableFromSqlError,
}


@dataclass(frozen=True)
class _Call:
    positional: str  # for asyncpg
    named: str  # for SQLAlchemy
    arguments: dict[str, Any]  # in the order of the positional statement's parameters


async def start_run(
    connection: Any,
    flow: str,
    inputs: Any = None,
    *,
    idempotency_key: str | None = None,
    priority: int = 0,
    version: int | None = None,
    started_by: str | None = None,
) -> str:
    """Queue a run of `flow` in the connection's current transaction; its id.

    `inputs`: a mapping of JSON values (None: none), checked against the flow's declared
    inputs before anything is written. `idempotency_key`: a repeated key (same flow, same
    user) answers the first run's id. `version`: default the latest. `started_by`: the user
    the run is started as (default: the local admin, as the service picks it); the database
    connection is trusted like an admin, no permission is checked.
    Raises `UnknownFlowError`, `UnknownVersionError`, `UnknownUserError`,
    `InputValidationError`, `RequestError`, `NotStartableFromSqlError`."""
    call = _start_run(flow, inputs, idempotency_key, priority, version, started_by)
    return str(await _value(connection, call))


async def start_runs(
    connection: Any,
    flow: str,
    inputs: list[Any],
    *,
    priority: int = 0,
    version: int | None = None,
    started_by: str | None = None,
) -> list[str]:
    """Queue one run of `flow` per element of `inputs`, in one round trip, in the
    connection's current transaction; their ids, in order. A problem with any run's inputs
    refuses them all, placed at the run (`runs[3].inputs.name`)."""
    call = _start_runs(flow, inputs, priority, version, started_by)
    return [str(run_id) for run_id in await _value(connection, call)]


def start_run_sync(
    connection: Any,
    flow: str,
    inputs: Any = None,
    *,
    idempotency_key: str | None = None,
    priority: int = 0,
    version: int | None = None,
    started_by: str | None = None,
) -> str:
    """`start_run` on a SQLAlchemy `Connection` or `Session` (synchronous)."""
    call = _start_run(flow, inputs, idempotency_key, priority, version, started_by)
    return str(_value_sync(connection, call))


def start_runs_sync(
    connection: Any,
    flow: str,
    inputs: list[Any],
    *,
    priority: int = 0,
    version: int | None = None,
    started_by: str | None = None,
) -> list[str]:
    """`start_runs` on a SQLAlchemy `Connection` or `Session` (synchronous)."""
    call = _start_runs(flow, inputs, priority, version, started_by)
    return [str(run_id) for run_id in _value_sync(connection, call)]


def _start_run(
    flow: str,
    inputs: Any,
    idempotency_key: str | None,
    priority: int,
    version: int | None,
    started_by: str | None,
) -> _Call:
    arguments = {
        "flow": flow,
        "inputs": compact_json(json_data({} if inputs is None else inputs, root="inputs")),
        "idempotency_key": idempotency_key,
        "priority": priority,
        "version": version,
        "started_by": started_by,
    }
    return _Call(START_RUN, _NAMED_START_RUN, arguments)


def _start_runs(
    flow: str, inputs: list[Any], priority: int, version: int | None, started_by: str | None
) -> _Call:
    arguments = {
        "flow": flow,
        "inputs": compact_json(json_data(list(inputs), root="runs")),
        "priority": priority,
        "version": version,
        "started_by": started_by,
    }
    return _Call(START_RUNS, _NAMED_START_RUNS, arguments)


async def _value(connection: Any, call: _Call) -> Any:
    """The call's one value, on an asyncpg or an async SQLAlchemy connection."""
    try:
        if hasattr(connection, "fetchval"):  # asyncpg
            return await connection.fetchval(call.positional, *call.arguments.values())
        result = await connection.execute(_text(call.named), call.arguments)
        return result.scalar_one()
    except Exception as error:
        refusal = refusal_of(error)
        if refusal is None:
            raise
        raise refusal from error


def _value_sync(connection: Any, call: _Call) -> Any:
    """The call's one value, on a synchronous SQLAlchemy connection or session."""
    try:
        return connection.execute(_text(call.named), call.arguments).scalar_one()
    except Exception as error:
        refusal = refusal_of(error)
        if refusal is None:
            raise
        raise refusal from error


def _text(statement: str) -> Any:
    # Imported here: the caller's connection is SQLAlchemy's, so it is loaded already, and
    # an asyncpg application never loads it.
    from sqlalchemy import text  # noqa: PLC0415

    return text(statement)


def refusal_of(error: BaseException) -> FlowManagerError | None:
    """The `app.errors` type of a refusal of `flow_manager.start_run`, from the driver's error
    (asyncpg's, or SQLAlchemy's wrapping asyncpg's or psycopg's); None for any other error."""
    cause: BaseException | None = error
    while cause is not None:
        state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        kind = REFUSALS.get(state) if isinstance(state, str) else None
        if kind is not None:
            message, detail = _message_and_detail(cause)
            if kind is InputValidationError:
                return InputValidationError(_problems(detail))
            if kind is RequestError:
                return RequestError(message)
            return kind(message)
        cause = getattr(cause, "orig", None) or cause.__cause__
    return None


def _message_and_detail(error: BaseException) -> tuple[str, str | None]:
    diagnostics = getattr(error, "diag", None)  # psycopg's
    if diagnostics is not None:
        return str(diagnostics.message_primary), diagnostics.message_detail
    if getattr(error, "detail", None) is None and error.__cause__ is not None:
        error = error.__cause__  # SQLAlchemy's asyncpg adapter: asyncpg's error inside
    message = getattr(error, "message", None) or str(error)
    return str(message), getattr(error, "detail", None)


def _problems(detail: str | None) -> list[Problem]:
    return [
        Problem(tuple(problem["loc"]), problem["msg"], problem["type"])
        for problem in json.loads(detail or "[]")
    ]

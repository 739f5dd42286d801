"""The one exception hierarchy of Flow Manager.

Every domain error subclasses `FlowManagerError`; its docstring is the default message. This
module imports nothing of ours, so every layer (the flow language included) may raise these.
The HTTP layer maps them to status codes in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the domain is built on these errors: this annotation only names it
    from app.domain.runs import RunError

Loc = tuple[str | int, ...]

# The characters no store can hold: NUL (PostgreSQL refuses it in text and JSONB) and surrogate
# code points, which UTF-8 cannot encode (a Python str holds them only unpaired, "lone").
# `app.domain.storable` refuses values holding them; error messages get U+FFFD instead (below).
UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"
# An error message is kept and answered up to this many characters (a task may raise, or a
# `fail` step build, a message of megabytes; its start says what went wrong).
MAX_ERROR_MESSAGE_CHARS = 16_384


class FlowManagerError(Exception):
    """Flow Manager failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or type(self).__name__).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition or a run's inputs, pointing at its place."""

    loc: Loc
    msg: str
    type: str = "value_error"
    line: int | None = None
    column: int | None = None

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"loc": list(self.loc), "msg": self.msg, "type": self.type}
        if self.line is not None:
            answer["line"] = self.line
            answer["column"] = self.column
        return answer

    def __str__(self) -> str:
        where = format_loc(self.loc) or "<definition>"
        if self.line is not None:
            where += f" (line {self.line}, column {self.column})"
        return f"{where}: {self.msg}"


def format_loc(loc: Loc) -> str:
    """`("steps", 2, "pg_query", "params", 0)` -> `steps[2].pg_query.params[0]`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class ProblemsError(FlowManagerError):
    """Something is invalid."""

    def __init__(self, problems: Iterable[Problem], message: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        summary = "; ".join(str(problem) for problem in self.problems)
        super().__init__(f"{message or self.__doc__}: {summary}" if summary else message)


class DefinitionError(ProblemsError):
    """The flow definition is invalid."""


class InputValidationError(ProblemsError):
    """The run's inputs do not match the flow's declared inputs."""


class StubError(ProblemsError):
    """The stubbed steps' outputs do not fit the flow."""


class FixtureError(FlowManagerError):
    """The fixture cannot be run: its message says where it is wrong, one line per problem."""


class ExpressionError(FlowManagerError):
    """The expression is invalid."""


class ExpressionSyntaxError(ExpressionError):
    """The expression cannot be compiled: bad syntax or a forbidden construct."""

    def __init__(self, message: str | None = None, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class ExpressionEvaluationError(ExpressionError):
    """The expression failed while being evaluated."""


class ExpressionLimitError(ExpressionEvaluationError):
    """The expression exceeded a size or time limit."""


class TaskError(FlowManagerError):
    """The task failed."""


class NonRetryableError(TaskError):
    """The task failed and must not be retried."""


class WaitTooLongError(NonRetryableError):
    """A `sleep` or a `wait_for`'s `timeout` would wait longer than MAX_DURABLE_WAIT_SECONDS."""


class ChildRunError(NonRetryableError):
    """A step's child run (`- flow: Name`) could not start, or it failed or was cancelled."""


class SubflowDepthError(ChildRunError):
    """A child run would be deeper than MAX_SUBFLOW_DEPTH below its first parent."""


class MissingOutputError(NonRetryableError):
    """The task did not return an output its step declares."""


class UnstorableValueError(NonRetryableError):
    """The value cannot be stored as JSON."""

    def __init__(
        self, message: str | None = None, *, loc: Loc = (), path: str = "", reason: str = ""
    ) -> None:
        super().__init__(message)
        self.loc = loc  # where in the value: ("outputs", "rows", 3, "name")
        self.path = path  # the same, as text: `outputs.rows[3].name`
        self.reason = reason  # what is wrong there, e.g. `NaN is not a JSON number`


class ValueTooLargeError(NonRetryableError):
    """The value is larger than its limit allows."""

    def __init__(self, message: str | None = None, *, size: int = 0, exact: bool = True) -> None:
        super().__init__(message)
        self.size = size  # bytes as compact JSON; a lower bound when not `exact`
        self.exact = exact


class OutputTooLargeError(ValueTooLargeError):
    """The step's outputs are larger than MAX_STEP_OUTPUT_BYTES allows."""


class RunTooLargeError(ValueTooLargeError):
    """What the run stores is larger than MAX_RUN_DOCUMENT_BYTES allows."""


class FanOutTooLargeError(NonRetryableError):
    """for_each gave more elements than MAX_FAN_OUT allows."""


class UnknownTaskError(FlowManagerError):
    """No task is registered under that name."""


class ConnectionFailedError(FlowManagerError):
    """The connection could not be opened."""


class DriverMissingError(ConnectionFailedError):
    """The driver for this connection type is not installed."""


class InvalidConnectionError(ConnectionFailedError, NonRetryableError):
    """The connection's parameters are invalid; retrying cannot help."""


class DestinationRefusedError(ConnectionFailedError, NonRetryableError):
    """The connection's destination is one flows may not reach (CONNECTION_ALLOWLIST, the
    private networks refused by default, the service's own store); retrying cannot help."""


class ConnectionTimeoutError(ConnectionFailedError):
    """The connection could not be opened in time."""


class ConnectionLimitError(ConnectionFailedError):
    """The process holds as many outbound connections as CONNECTION_MAX_TOTAL allows."""


class UnknownConnectionError(FlowManagerError):
    """The flow declares no connection of that name."""


def storable_text(text: str) -> str:
    """`text` with each character no store can hold replaced by U+FFFD, cut at
    MAX_ERROR_MESSAGE_CHARS; `text` itself when it needs neither."""
    if len(text) > MAX_ERROR_MESSAGE_CHARS:
        cut = len(text) - MAX_ERROR_MESSAGE_CHARS
        text = f"{text[:MAX_ERROR_MESSAGE_CHARS]}... ({cut} more characters)"
    if UNSTORABLE_CHARACTER.search(text) is None:
        return text
    return UNSTORABLE_CHARACTER.sub(REPLACEMENT_CHARACTER, text)


class FlowFailedError(FlowManagerError):
    """The flow run failed."""

    def __init__(self, run_id: str, error: RunError) -> None:
        self.run_id = run_id
        self.error = error
        where = f" at step {error.step!r}" if error.step else ""
        super().__init__(f"Flow run {run_id} failed{where}: {error.type}: {error.message}")


class NotStartableFromSqlError(FlowManagerError):
    """The flow's runs cannot be started from SQL (`flow_manager.start_run`): start them
    through the API."""


class LeaseLostError(FlowManagerError):
    """This process no longer holds the run's lease: another worker took the run over, or the
    run ended elsewhere. Nothing more of this execution is recorded."""


class StoreUnavailableError(FlowManagerError):
    """The store failed for a passing reason (unreachable, overloaded, a serialization
    failure): the same work may succeed later."""


class SingleProcessStoreError(FlowManagerError):
    """SQLite is single-process: the API's embedded worker runs its runs; use PostgreSQL (or
    MariaDB) to run workers in other processes."""


class TaskModuleError(FlowManagerError):
    """A task module could not be loaded."""


class NotFoundError(FlowManagerError):
    """Not found."""


class UnknownFlowError(NotFoundError):
    """No flow is registered under that name."""


class UnknownVersionError(NotFoundError):
    """The flow has no such version."""


class UnknownRunError(NotFoundError):
    """No run has that id."""


class UnknownUserError(NotFoundError):
    """No user has that name."""


class UnknownKeyError(NotFoundError):
    """No API key has that id."""


class AuthenticationError(FlowManagerError):
    """Authentication required: send `Authorization: Bearer <api key>`."""


class ForbiddenError(FlowManagerError):
    """You may not do that."""


class MissingScopeError(ForbiddenError):
    """The credential's scopes do not allow that."""


class CsrfError(ForbiddenError):
    """A request signed in by the session cookie must carry the X-CSRF-Token header that
    sign-in returned."""


class RateLimitedError(FlowManagerError):
    """Too many requests; try again later."""

    def __init__(self, message: str | None = None, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnknownScheduleError(NotFoundError):
    """No schedule has that id."""


class UnknownStepError(NotFoundError):
    """The run has no such step, or no such element of it."""


class ConflictError(FlowManagerError):
    """The request conflicts with the current state."""


class DuplicateError(ConflictError):
    """What was to be made exists already: it was made meanwhile, by another request."""


class RunStateError(ConflictError):
    """The run's state forbids that."""


class FlowNameTakenError(ConflictError):
    """A flow of that name exists and is not yours to change: choose another name."""


class QuotaExceededError(ConflictError):
    """A limit on what one user may own is reached."""


class RequestError(FlowManagerError):
    """The request is invalid."""

    def __init__(self, message: str | None = None, *, loc: Loc = ()) -> None:
        super().__init__(message)
        self.loc = loc


class InvalidCursorError(RequestError):
    """The cursor is not one this service handed out."""


class PayloadTooLargeError(FlowManagerError):
    """The request body is larger than MAX_BODY_BYTES."""

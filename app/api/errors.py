"""The one place where errors become HTTP answers, all in FastAPI's shape `{"detail": ...}`.

| error | status | detail |
|---|---|---|
| DefinitionError | 422 | problems; `loc` points into the definition, with `line`/`column` |
| InputValidationError | 422 | problems; `loc` is `["body", "inputs", name]` |
| RequestError (e.g. InvalidCursorError) | 422 | one problem at the error's `loc` |
| AuthenticationError | 401 | message, with `WWW-Authenticate: Bearer` |
| ForbiddenError (scope, permission, CSRF) | 403 | message |
| UnstorableValueError (an input no store can hold) | 422 | one problem at `["body", *loc]` |
| NotFoundError | 404 | message |
| ConflictError (e.g. RunStateError) | 409 | message |
| PayloadTooLargeError | 413 | message |
| RateLimitedError | 429 | message, with `Retry-After` in whole seconds |
| FastAPI's RequestValidationError | 422 | FastAPI's standard list |
| HTTPException (415, 404 route...) | its status | its detail |
| 405 (a method the path lacks) | 405 | FastAPI's, with `Allow` naming every method of the path |
| anything else | 500 | "Internal Server Error", `Connection: close` (the server logs the error) |

A request error is 422 rather than 400 so that every "this part of the request is wrong"
answer has the same status and shape as FastAPI's own validation errors.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from app.errors import (
    AuthenticationError,
    ConflictError,
    DefinitionError,
    FlowManagerError,
    ForbiddenError,
    InputValidationError,
    NotFoundError,
    PayloadTooLargeError,
    Problem,
    ProblemsError,
    RateLimitedError,
    RequestError,
    UnstorableValueError,
)

MESSAGE_STATUS: dict[type[FlowManagerError], int] = {
    AuthenticationError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    PayloadTooLargeError: 413,
    RateLimitedError: 429,
}
MESSAGE_ERRORS = tuple(MESSAGE_STATUS)


def install_error_handlers(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Map errors to answers; `routes` are the API's, whose methods a 405 lists."""

    async def http_answer(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if isinstance(error.__cause__, MESSAGE_ERRORS):
            # FastAPI answers 400 to any error met while it reads a body, keeping that error as
            # the cause: one of ours (a body past MAX_BODY_BYTES) is answered as itself.
            return mapped_answer(error.__cause__)
        allowed = _methods_of_path(routes, request.scope) if error.status_code == 405 else None
        if allowed:  # else not an API path (/docs...): Starlette's own Allow is whole
            headers = {**(error.headers or {}), "Allow": ", ".join(sorted(allowed))}
            error = HTTPException(405, error.detail, headers)
        return await http_exception_handler(request, error)

    for error_type in MESSAGE_STATUS:
        app.add_exception_handler(error_type, message_answer)
    app.add_exception_handler(DefinitionError, problems_answer)
    app.add_exception_handler(InputValidationError, problems_answer)
    app.add_exception_handler(RequestError, request_error_answer)
    app.add_exception_handler(UnstorableValueError, unstorable_answer)
    app.add_exception_handler(RequestValidationError, validation_answer)
    app.add_exception_handler(HTTPException, http_answer)
    app.add_exception_handler(Exception, unexpected_error_answer)


class ErrorResponse(JSONResponse):
    """JSON that renders whatever text an error message quotes back, lone surrogates too."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:  # a surrogate cannot be UTF-8; as an escape it is valid JSON
            return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_answer(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return ErrorResponse({"detail": detail}, status_code=status, headers=headers)


async def message_answer(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, FlowManagerError)
    return mapped_answer(error)


def mapped_answer(error: FlowManagerError) -> JSONResponse:
    """The answer to one of the errors MESSAGE_STATUS maps: its status, its message as the
    detail. For the ASGI middlewares, which run outside the exception handlers."""
    status = next(code for kind, code in MESSAGE_STATUS.items() if isinstance(error, kind))
    return error_answer(status, error.message, _headers_of(error))


def _headers_of(error: FlowManagerError) -> dict[str, str] | None:
    if isinstance(error, AuthenticationError):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(error, RateLimitedError):
        return {"Retry-After": str(max(1, math.ceil(error.retry_after)))}
    return None


async def problems_answer(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ProblemsError)
    # Inputs always arrive in a request body's `inputs` field.
    prefix: tuple[str, ...] = ("body",) if isinstance(error, InputValidationError) else ()
    return error_answer(422, [_located(problem, prefix) for problem in error.problems])


async def request_error_answer(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestError)
    problem = Problem(error.loc, error.message, _snake_case(type(error).__name__))
    return error_answer(422, [problem.as_dict()])


async def unstorable_answer(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, UnstorableValueError)
    problem = Problem(("body", *error.loc), error.reason, "unstorable_value")
    return error_answer(422, [problem.as_dict()])


async def validation_answer(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    return await request_validation_exception_handler(request, error)


async def unexpected_error_answer(_: Request, __: Exception) -> JSONResponse:
    # Starlette re-raises the error after this answer, so the server logs its traceback, and
    # uvicorn then closes the connection: say so, or the client reuses it for its next request
    # and has it reset.
    answer = error_answer(500, "Internal Server Error")
    answer.headers["Connection"] = "close"
    return answer


def _methods_of_path(routes: Sequence[BaseRoute], scope: Scope) -> set[str]:
    """Every method some route serves on the request's path. Each FastAPI route has one
    method, and Starlette's 405 names only those of the first route on the path."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, APIRoute) and route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return methods


def _located(problem: Problem, prefix: tuple[str, ...]) -> dict[str, Any]:
    answer = problem.as_dict()
    answer["loc"] = [*prefix, *answer["loc"]]
    return answer


def _snake_case(class_name: str) -> str:
    """`InvalidCursorError` -> `invalid_cursor`."""
    words = re.findall(r"[A-Z][a-z0-9]*", class_name.removesuffix("Error")) or ["request"]
    return "_".join(word.lower() for word in words)

"""The `http_request` built-in: one HTTP request, through an `http` connection or on its own.

A status outside `expect_status` (or, without it, any status from 400 up) fails the attempt with
a retryable `TaskError`; transport failures (refused, timed out) keep httpx's own exception
class, so its name (`ConnectError`, `ReadTimeout`, ...) is the error type that `retry_on` can
name, with a message that names the method and the URL. URLs in messages never show a password
or a secret query parameter. Redirects are not followed: a 3xx is an answer like any other.

Without a connection, the engine lends the step the process's shared client (checked by the
destination policy); called directly with none, the task makes a short-lived client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from app.connections.urls import redact_password, redact_url
from app.errors import DestinationRefusedError, NonRetryableError, TaskError
from app.tasks.context import TaskContext
from app.tasks.registry import TaskRegistry

registry = TaskRegistry()

STANDALONE_TIMEOUT = 30.0  # without a connection; the same default as an http connection's
ERROR_BODY_EXCERPT = 200  # characters of the body quoted when a status is refused


@registry.register(
    "http_request",
    builtin=True,
    outputs=("status_code", "headers", "json", "text"),
    connection_types=frozenset({"http"}),
    connection_required=False,
    description="Send an HTTP request and return its status, headers and body",
)
async def http_request(
    *,
    method: str = "GET",
    url: str | None = None,
    path: str | None = None,
    headers: Mapping[str, Any] | None = None,
    params: Any = None,
    json: Any = None,
    body: str | bytes | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 (a step parameter; httpx enforces it)
    expect_status: int | list[int] | None = None,
    connection: httpx.AsyncClient | None = None,
    context: TaskContext | None = None,
) -> dict[str, Any]:
    verb = _method(method)
    has_base_url = connection is not None and bool(str(connection.base_url))
    target = _target(url, path, has_base_url=has_base_url)
    expected = _expected_statuses(expect_status)
    options = _request_options(headers, params, json, body, timeout)
    async with _client(connection) as client:
        request = client.build_request(verb, target, **options)
        try:
            response = await client.send(request)
        except httpx.TransportError as error:
            raise _named(error, request) from None
        except DestinationRefusedError as error:
            step = f"step {context.step_id!r}: " if context is not None else ""
            where = f"{verb} {redact_url(str(request.url))}"
            raise DestinationRefusedError(f"{step}{where}: {error}") from None
    _check_status(verb, response, expected)
    return {
        "status_code": response.status_code,
        "headers": dict(response.headers),
        "json": _decoded_json(response),
        "text": response.text,
    }


@asynccontextmanager
async def _client(connection: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """The connection's pooled client, or a short-lived one for a step without connection."""
    if connection is not None:
        yield connection
        return
    async with httpx.AsyncClient(timeout=STANDALONE_TIMEOUT, trust_env=False) as client:
        yield client


def _named(error: httpx.TransportError, request: httpx.Request) -> httpx.TransportError:
    """The same kind of error, saying which request failed (`All connection attempts failed`
    alone does not), without the URL's credentials."""
    url = str(request.url)
    reason = redact_password(str(error) or type(error).__name__, url)
    return type(error)(f"{request.method} {redact_url(url)} failed: {reason}", request=request)


def _method(method: str) -> str:
    if not isinstance(method, str) or not method.strip():
        raise NonRetryableError(f"http_request `method` must be an HTTP method, not {method!r}")
    return method.strip().upper()


def _target(url: str | None, path: str | None, *, has_base_url: bool) -> str:
    """The URL to request; with a connection, relative ones resolve against its base_url."""
    if (url is None) == (path is None):
        raise NonRetryableError("http_request takes exactly one of `url` and `path`")
    if path is not None:
        if not has_base_url:
            raise NonRetryableError(
                "http_request `path` is relative to a connection's base_url; "
                "give the step an http `connection` with a base_url or use an absolute `url`"
            )
        if not isinstance(path, str) or _is_absolute(path):
            raise NonRetryableError(f"http_request `path` must be a relative path, not {path!r}")
        return path
    if not isinstance(url, str):
        raise NonRetryableError(f"http_request `url` must be a string, not {url!r}")
    if not has_base_url and not _is_absolute(url):
        raise NonRetryableError(
            f"http_request `url` {redact_url(url)!r} is not absolute (http:// or https://); "
            "a relative URL needs an http `connection` with a base_url"
        )
    return url


def _is_absolute(url: str) -> bool:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        shown = redact_password(f"{redact_url(url)!r}: {error}", url)
        raise NonRetryableError(f"http_request cannot parse the URL {shown}") from None
    return parsed.is_absolute_url


def _expected_statuses(expect_status: int | list[int] | None) -> frozenset[int] | None:
    if expect_status is None:
        return None
    statuses = expect_status if isinstance(expect_status, list) else [expect_status]
    if not statuses or not all(_is_int(status) for status in statuses):
        raise NonRetryableError(
            f"http_request `expect_status` must be a status code or a list of them, "
            f"not {expect_status!r}"
        )
    return frozenset(statuses)


def _request_options(
    headers: Mapping[str, Any] | None,
    params: Any,
    json: Any,
    body: str | bytes | None,
    timeout: float | None,
) -> dict[str, Any]:
    """httpx's keyword arguments for the request, after checking the step's values."""
    if json is not None and body is not None:
        raise NonRetryableError("http_request takes `json` or `body`, not both")
    if body is not None and not isinstance(body, str | bytes):
        raise NonRetryableError(
            f"http_request `body` must be text, not {type(body).__name__}; "
            "send structured data with `json`"
        )
    for name, value in (("headers", headers), ("params", params)):
        if value is not None and not isinstance(value, Mapping):
            raise NonRetryableError(
                f"http_request `{name}` must be a mapping, not {type(value).__name__}"
            )
    options: dict[str, Any] = {"params": params, "json": json, "content": body}
    if headers is not None:
        options["headers"] = {str(key): str(value) for key, value in headers.items()}
    if timeout is not None:  # otherwise the client's own (the connection's) timeout applies
        if not _is_number(timeout) or timeout <= 0:
            raise NonRetryableError(
                f"http_request `timeout` must be a positive number of seconds, not {timeout!r}"
            )
        options["timeout"] = float(timeout)
    return options


def _check_status(method: str, response: httpx.Response, expected: frozenset[int] | None) -> None:
    status = response.status_code
    if expected is None:
        if status < 400:
            return
        expectation = "a status below 400"
    else:
        if status in expected:
            return
        expectation = f"one of {sorted(expected)}"
    message = f"{method} {redact_url(str(response.url))} answered {status}, expected {expectation}"
    excerpt = response.text[:ERROR_BODY_EXCERPT].strip()
    raise TaskError(f"{message}: {excerpt}" if excerpt else message)


def _decoded_json(response: httpx.Response) -> Any:
    """The decoded body when the response says it is JSON; None otherwise or when it is not."""
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        return None
    try:
        return response.json()
    except ValueError:  # a body that claims to be JSON but is not: its `text` still tells
        return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

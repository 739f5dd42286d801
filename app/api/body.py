"""Reading request bodies: the size limit, JSON that the store can hold, definitions' formats.

- `BodySizeLimit` refuses a body past MAX_BODY_BYTES (`PayloadTooLargeError`, a 413): at once
  when Content-Length says so, else as soon as the bytes streamed in exceed it, so no body is
  ever buffered whole.
- Routes with a JSON body (`JsonBodyRoute`) answer 415 to another Content-Type and parse with
  `parse_json`, which refuses what the databases cannot hold (`app.domain.storable`: NaN,
  infinities, NUL characters, lone surrogates, nesting deeper than its MAX_DEPTH) as FastAPI refuses
  malformed JSON: 422 `json_invalid`, the reason (and where) in `ctx.error`.
- Definitions (`read_definition`) are YAML or JSON by Content-Type, which they must carry: 415
  otherwise, before the body is read. A definition sent without one, or as a form
  (`text/plain`, `application/x-www-form-urlencoded`, `multipart/form-data`: the types a page
  on another site may POST without the browser asking the service first), is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import mapped_answer
from app.domain.formats import Format
from app.domain.storable import MAX_DEPTH, json_data
from app.errors import PayloadTooLargeError, UnstorableValueError

JSON_TYPE = "application/json"
YAML_TYPE = "application/yaml"
YAML_TYPES = (YAML_TYPE, "text/yaml", "application/x-yaml", "text/x-yaml")


class BodySizeLimit:
    """ASGI middleware: `PayloadTooLargeError` for a request body larger than `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = f"the request body is larger than MAX_BODY_BYTES ({max_bytes} bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(Headers(scope=scope))
        if declared is not None and declared > self.max_bytes:
            # Before the app, so outside its exception handlers: answered here as they would.
            await mapped_answer(PayloadTooLargeError(self.message))(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # Met by whoever reads the body: a route's dependency (answered by the error
                # handlers), or FastAPI itself (answered as the cause of its 400: errors.py).
                raise PayloadTooLargeError(self.message)
            return message

        await self.app(scope, receive_within_limit, send)


def _content_length(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# JSON bodies


class JsonBodyRoute(APIRoute):
    """A route whose body, if it has one, must be JSON that the service can store and answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        takes_body = self.body_field is not None

        async def handle_json(request: Request) -> Response:
            if takes_body:
                _require_json(request.headers)
            return await handle(JsonRequest(request.scope, request.receive))

        return handle_json


class JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


def parse_json(raw: bytes) -> Any:
    """The body as JSON; json.JSONDecodeError (a 422 from FastAPI) for anything unstorable."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        text = raw.decode("utf-8", "replace")
        raise _invalid("the body is not valid UTF-8", text, error.start) from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant(text), parse_int=_int(text))
    except RecursionError:
        raise _invalid(f"nesting deeper than {MAX_DEPTH} levels", text, 0) from None
    try:
        return json_data(value, root="body")
    except UnstorableValueError as error:
        raise _invalid(error.message, text, 0) from None


def _refuse_constant(text: str) -> Callable[[str], Any]:
    def refuse(name: str) -> Any:
        raise _invalid(f"{name} is not a JSON number", text, text.find(name))

    return refuse


def _int(text: str) -> Callable[[str], int]:
    def parse(digits: str) -> int:
        try:
            return int(digits)
        except ValueError:  # past Python's limit on digits
            raise _invalid("integer too large", text, text.find(digits)) from None

    return parse


def _invalid(message: str, text: str, position: int) -> json.JSONDecodeError:
    return json.JSONDecodeError(message, text, max(position, 0))


def _require_json(headers: Headers) -> None:
    media = media_type(headers)
    if media is None:
        if _has_body(headers):
            raise _unsupported(f"send the body as {JSON_TYPE} (the Content-Type header is missing)")
        return
    if not _is_json(media):
        raise _unsupported(f"send the body as {JSON_TYPE}, not {media}")


def _has_body(headers: Headers) -> bool:
    return "transfer-encoding" in headers or (_content_length(headers) or 0) > 0


# ---------------------------------------------------------------------------------------------
# Definitions


@dataclass(frozen=True)
class DefinitionBody:
    source: bytes
    format: Format


async def read_definition(request: Request) -> DefinitionBody:
    """The body of a route that takes a definition (a FastAPI dependency); its Content-Type
    is checked before the body is read."""
    format = definition_format(request.headers)
    return DefinitionBody(await request.body(), format)


def definition_format(headers: Headers) -> Format:
    """YAML or JSON, as the Content-Type says; 415 for any other type, or none."""
    media = media_type(headers)
    accepted = f"{', '.join(YAML_TYPES)} or {JSON_TYPE}"
    if media is None:
        raise _unsupported(
            f"send a flow definition as {accepted} (the Content-Type header is missing)"
        )
    if _is_json(media):
        return "json"
    if media in YAML_TYPES:
        return "yaml"
    raise _unsupported(f"a flow definition is sent as {accepted}, not {media}")


# ---------------------------------------------------------------------------------------------
# Content types


def media_type(headers: Headers) -> str | None:
    """`application/json; charset=utf-8` -> `application/json`; None when absent."""
    value = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return value or None


def _is_json(media: str) -> bool:
    return media == JSON_TYPE or (media.startswith("application/") and media.endswith("+json"))


def _unsupported(message: str) -> HTTPException:
    return HTTPException(415, message)

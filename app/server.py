"""The HTTP server of `python -m app serve`: uvicorn, with the service's limits on connections.

- Idle keep-alive connections are kept KEEP_ALIVE_SECONDS, longer than clients and load
  balancers keep theirs, so that the client is always the one that closes an idle connection:
  a server closing one races the client's next request on it, which is then reset.
- The request line and headers of a request may take MAX_HEADER_BYTES at most: uvicorn's
  httptools parser buffers them without any limit (a 200 MB header was 330 MB of memory); past
  the limit the answer is 431 and the connection is closed, having buffered at most the limit
  and one read more.
"""

from __future__ import annotations

import json

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.api.errors import error_answer
from app.main import create_app
from app.services.observability.logs import uvicorn_log_config
from app.settings import Settings


def serve(settings: Settings) -> None:
    """Serve the API on `settings.host`:`settings.port` until SIGINT or SIGTERM.

    With LOG_FORMAT=json uvicorn's own lines (errors, access) are JSON like the service's."""
    log_config = uvicorn_log_config(settings.log_format, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_keep_alive=settings.keep_alive_seconds,
        http=bounded_http_protocol(settings.max_header_bytes),
        log_config=LOGGING_CONFIG if log_config is None else log_config,
    )


def bounded_http_protocol(max_head_bytes: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, refusing a request head longer than `max_head_bytes`."""
    return type(
        "BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"max_head_bytes": max_head_bytes}
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Refuses a request whose head (line and headers) is larger than `max_head_bytes`: as
    its reads arrive, so that a head that never ends is never buffered, and once it is whole,
    so that the limit is exact."""

    max_head_bytes = 64 * 1024
    head_bytes = 0  # read so far of the head being received
    in_head = True  # from the end of a request (or the connection's start) to its headers' end
    heads = 0  # heads completed on this connection

    def data_received(self, data: bytes) -> None:
        began_in_head, heads = self.in_head, self.heads
        if began_in_head and self._head_overflows(data):
            # Refused before the parser reads it: the parser refuses a long request line
            # itself, with a bare 400, before this limit's exact check could answer 431.
            self.transport.write(_raw_refusal(self.max_head_bytes))
            self.transport.close()
            return
        super().data_received(data)
        # Only a read that began and ended inside one head is counted: one in which a head
        # ended may hold a body, and this limit must never refuse a body for its size.
        if not (began_in_head and self.in_head and self.heads == heads):
            return
        self.head_bytes += len(data)
        if self.head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self.transport.write(_raw_refusal(self.max_head_bytes))
            self.transport.close()

    def _head_overflows(self, data: bytes) -> bool:
        """Whether the head under way, with what of it `data` holds, passes the limit."""
        if self.transport.is_closing():
            return False
        end = data.find(b"\r\n\r\n")
        in_this_head = len(data) if end < 0 else end + 4
        return self.head_bytes + in_this_head > self.max_head_bytes

    def on_headers_complete(self) -> None:
        self.in_head, self.head_bytes, self.heads = False, 0, self.heads + 1
        if self._head_size() <= self.max_head_bytes:
            super().on_headers_complete()
            return
        # uvicorn's own way to answer without the app (as for its concurrency limit): the
        # request's cycle runs `refuse_head` instead, which answers and closes the connection.
        app, self.app = self.app, self.refuse_head
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head = True

    async def refuse_head(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The answer to a request whose head is too large (an ASGI app; it reads no body)."""
        answer = error_answer(431, _detail(self.max_head_bytes))
        answer.headers["Connection"] = "close"
        await answer(scope, receive, send)

    def _head_size(self) -> int:
        # The request line and each `name: value\r\n`, as sent (the method and version aside).
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)


def _detail(max_head_bytes: int) -> str:
    return f"the request line and headers are larger than MAX_HEADER_BYTES ({max_head_bytes} bytes)"


def _raw_refusal(max_head_bytes: int) -> bytes:
    """The same answer, written straight to a connection whose head never ended."""
    body = json.dumps({"detail": _detail(max_head_bytes)}).encode()
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body

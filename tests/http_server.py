"""A real HTTP server on 127.0.0.1 for the tests of the http connection and `http_request`.

Routes (any method): `/status/<code>` answers that status; `/json` a JSON object; `/text` plain
text; `/bad-json` text that claims to be JSON; `/hang` answers only once the test ends (for
timeouts); `/redirect?to=URL` answers 302 to that URL; `/set-cookie` sets a cookie; every
other path echoes the request as JSON `{method, path, query, headers, body}`.
Every request is also recorded in `LocalHttpServer.requests`.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HANG_LIMIT_SECONDS = 10.0  # a hanging request gives up on its own if a test forgets it


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class LocalHttpServer:
    url: str
    requests: list[ReceivedRequest] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: LocalHttpServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left is expected here, not worth a traceback


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean

    def _handle(self) -> None:
        received = self._receive()
        self.server.state.requests.append(received)
        route = received.path
        if route.startswith("/status/"):
            code = int(route.removeprefix("/status/"))
            self._answer(code, "text/plain", f"status {code}".encode())
        elif route == "/json":
            self._answer(200, "application/json; charset=utf-8", b'{"hello": "world"}')
        elif route == "/text":
            self._answer(200, "text/plain; charset=utf-8", b"plain text")
        elif route == "/bad-json":
            self._answer(200, "application/json", b"not json {")
        elif route == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(received.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "/set-cookie":
            self.send_response(200)
            self.send_header("Set-Cookie", "session=abc; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "/hang":
            self.server.state.release.wait(HANG_LIMIT_SECONDS)
            self._answer(200, "text/plain", b"too late")
        else:
            echo = {
                "method": received.method,
                "path": received.path,
                "query": received.query,
                "headers": received.headers,
                "body": received.body.decode(),
            }
            self._answer(200, "application/json", json.dumps(echo).encode())

    def _receive(self) -> ReceivedRequest:
        length = int(self.headers.get("content-length") or 0)
        parts = urlsplit(self.path)
        return ReceivedRequest(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve() -> Iterator[LocalHttpServer]:
    """Run the server in a thread for the duration of the block."""
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    server.state = LocalHttpServer(url=f"http://{host!s}:{port}")
    # A short poll interval: shutdown() waits for the loop's next poll.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="test-http-server"
    )
    thread.start()
    try:
        yield server.state
    finally:
        server.state.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def refused_url() -> Iterator[str]:
    """A URL on a port that is bound but not listening, so every connection is refused."""
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        host, port = reserved.getsockname()
        yield f"http://{host}:{port}"

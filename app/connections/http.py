"""The `http` connection: one pooled `httpx.AsyncClient` with a base URL, headers and a timeout.

Tasks receive the client itself as `connection`; a relative URL they request is resolved
against `base_url` (whose path is kept: `https://h/api` + `/users` -> `https://h/api/users`).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.connections.base import ConnectionPlugin
from app.connections.params import ConnectionParams
from app.errors import ConnectionFailedError

_KNOWN_PARAMS = frozenset({"base_url", "headers", "timeout", "verify", "max_connections"})


@dataclass(frozen=True)
class HttpSettings:
    base_url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0  # seconds, for each of connect, read, write and pool
    verify: bool | str = True  # a string is the path of a CA bundle
    max_connections: int = 100

    @classmethod
    def read(cls, name: str, params: Mapping[str, Any]) -> HttpSettings:
        reader = ConnectionParams(name, params, _KNOWN_PARAMS)
        base_url = params.get("base_url", cls.base_url)
        if not isinstance(base_url, str):
            raise reader.problem(f"'base_url' must be a string, got {base_url!r}")
        headers = params.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise reader.problem(f"'headers' must be a mapping, got {headers!r}")
        return cls(
            base_url=base_url.strip(),
            headers={str(key): str(value) for key, value in headers.items()},
            timeout=reader.seconds("timeout", cls.timeout),
            verify=_verify(reader, params.get("verify")),
            max_connections=reader.integer("max_connections", cls.max_connections, minimum=1),
        )


def _verify(reader: ConnectionParams, value: object) -> bool | str:
    # A private authority's CA bundle is given by path; anything else must be a flag.
    if isinstance(value, str) and ("/" in value or "\\" in value):
        return value
    return reader.flag("verify", True)


class HttpConnection(ConnectionPlugin):
    type = "http"
    driver = "httpx"
    description = "HTTP through one pooled httpx client; tasks receive the httpx.AsyncClient"

    def __init__(self, name: str, params: Mapping[str, Any]) -> None:
        super().__init__(name, params)
        self.settings = HttpSettings.read(name, self.params)
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        settings = self.settings
        try:
            self._client = httpx.AsyncClient(
                base_url=settings.base_url,
                headers=dict(settings.headers),
                timeout=settings.timeout,
                verify=_ssl_context(settings.verify),
                limits=httpx.Limits(max_connections=settings.max_connections),
            )
        except (httpx.InvalidURL, OSError, ValueError) as error:
            raise ConnectionFailedError(
                f"connection {self.name!r}: {type(error).__name__}: {error}"
            ) from error

    @asynccontextmanager
    async def session(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._client is None:
            raise ConnectionFailedError(f"connection {self.name!r} is not open")
        yield self._client  # one shared client: httpx pools the connections behind it

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _ssl_context(verify: bool | str) -> bool | ssl.SSLContext:
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify

"""The `http` connection: one pooled `httpx.AsyncClient` with a base URL, headers and a timeout.

Tasks receive the client itself as `connection`; a relative URL they request is resolved
against `base_url` (whose path is kept: `https://h/api` + `/users` -> `https://h/api/users`).
The connection's `headers` go only to the `base_url`'s origin (scheme, host and port), never to
another host a step names. The client keeps no cookies (it is shared by runs and flows) and
reads no proxy from the environment; its connections go where the destination policy allows.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

from app.connections.base import ConnectionPlugin
from app.connections.destinations import ALLOW_ALL, DestinationPolicy
from app.connections.http_transport import ConnectionTransport, origin_of, pinned_transport
from app.connections.limits import DEFAULT_LIMITS, ConnectionLimits
from app.connections.params import ConnectionParams
from app.connections.urls import redact_password
from app.errors import ConnectionFailedError, InvalidConnectionError

# The name of the client `http_request` is lent when its step names no connection.
STANDALONE_HTTP = "http_request"

_KNOWN_PARAMS = frozenset({"base_url", "headers", "timeout", "verify", "max_connections"})


@dataclass(frozen=True)
class HttpSettings:
    base_url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0  # seconds, for each of read, write and pool (and connect, at most)
    connect_timeout: float = 10.0  # CONNECTION_CONNECT_TIMEOUT, or `timeout` when shorter
    verify: bool | str = True  # a string is the path of a CA bundle
    max_connections: int = 20

    @classmethod
    def read(
        cls,
        name: str,
        params: Mapping[str, Any],
        limits: ConnectionLimits = DEFAULT_LIMITS,
        policy: DestinationPolicy = ALLOW_ALL,
    ) -> HttpSettings:
        reader = ConnectionParams(name, params, _KNOWN_PARAMS)
        base_url = params.get("base_url", cls.base_url)
        if not isinstance(base_url, str):
            raise reader.problem(f"'base_url' must be a string, got {base_url!r}")
        headers = params.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise reader.problem(f"'headers' must be a mapping, got {headers!r}")
        if headers and not base_url.strip():
            raise reader.problem(
                "'headers' are sent only to the origin of 'base_url'; give the connection a "
                "base_url"
            )
        timeout = reader.seconds("timeout", cls.timeout)
        return cls(
            base_url=base_url.strip(),
            headers={str(key): str(value) for key, value in headers.items()},
            timeout=timeout,
            connect_timeout=min(timeout, limits.connect_timeout),
            verify=_verify(reader, params.get("verify"), policy),
            max_connections=reader.size(
                "max_connections", cls.max_connections, minimum=1, maximum=limits.max_pool_size
            ),
        )


def _verify(reader: ConnectionParams, value: object, policy: DestinationPolicy) -> bool | str:
    # A private authority's CA bundle is given by path (inside CA_BUNDLE_DIR, in the service);
    # anything else must be a flag.
    if isinstance(value, str) and ("/" in value or "\\" in value):
        return policy.ca_bundle(f"connection {reader.connection!r}", value)
    return reader.flag("verify", True)


class HttpConnection(ConnectionPlugin):
    type = "http"
    driver = "httpx"
    description = "HTTP through one pooled httpx client; tasks receive the httpx.AsyncClient"

    def __init__(self, name: str, params: Mapping[str, Any], **options: Any) -> None:
        super().__init__(name, params, **options)
        self.settings = HttpSettings.read(name, self.params, self.limits, self.policy)
        self._client: httpx.AsyncClient | None = None

    @property
    def subject(self) -> str:
        """How errors name it; the shared client of `http_request` leaves that to the step."""
        return "" if self.name == STANDALONE_HTTP else f"connection {self.name!r}"

    @property
    def size(self) -> int:
        return self.settings.max_connections

    @property
    def open_timeout(self) -> float:
        return self.settings.connect_timeout

    async def open(self) -> None:
        settings = self.settings
        try:
            limits = httpx.Limits(max_connections=settings.max_connections)
            transport = pinned_transport(
                self.policy,
                self.subject,
                verify=_ssl_context(settings.verify),
                limits=limits,
            )
            base_url = httpx.URL(settings.base_url)
            origin = origin_of(base_url) if settings.base_url else None
            self._client = httpx.AsyncClient(
                base_url=base_url,
                timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
                transport=ConnectionTransport(transport, origin, settings.headers),
                cookies=_no_cookies(),
                trust_env=False,
            )
        except (httpx.InvalidURL, OSError, ValueError) as error:
            # A URL or CA bundle that cannot be used now cannot later either: not retried.
            reason = redact_password(f"{type(error).__name__}: {error}", settings.base_url)
            raise InvalidConnectionError(f"connection {self.name!r}: {reason}") from None

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


def _no_cookies() -> CookieJar:
    """A jar that keeps nothing: a client shared by runs must not carry one run's session
    cookie into another's requests."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))

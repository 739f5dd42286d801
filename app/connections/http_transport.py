"""The transport of flows' HTTP clients: checked destinations and origin-bound headers.

- `PinnedBackend` is httpcore's network backend with a check in front: each new TCP connection
  (the first request to an origin, and every redirect a client follows to another) resolves its
  host once, keeps the addresses the policy allows and connects to one of them. TLS still sends
  and verifies the host name: httpcore starts TLS on the connected stream with the URL's host.
- `ConnectionTransport` adds the connection's own headers (`Authorization`...) to requests for
  the connection's `base_url` origin only; a request to any other origin goes without them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import httpcore
import httpx

from app.connections.destinations import DestinationPolicy
from app.errors import ConnectionFailedError, DestinationRefusedError

_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def origin_of(url: httpx.URL) -> Origin:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 0)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    def __init__(
        self,
        policy: DestinationPolicy,
        subject: str,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._subject = subject
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                destination = await self._policy.destination(self._subject, host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} took over {timeout}s") from None
        except DestinationRefusedError:
            raise
        except ConnectionFailedError as error:  # a name that does not resolve: httpx's kind
            raise httpcore.ConnectError(error.message) from None
        failure: httpcore.ConnectError | None = None
        for address in destination.addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as error:
                failure = error
        assert failure is not None, "a destination always has an address"
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise self._policy.refuse_unix_socket(self._subject, path)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def pinned_transport(
    policy: DestinationPolicy, subject: str, *, verify: Any, limits: httpx.Limits
) -> httpx.AsyncBaseTransport:
    """httpx's transport, with no proxy from the environment, connecting through the policy."""
    ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, limits=limits, trust_env=False)
    if policy.checks_addresses:
        # httpx does not expose httpcore's network backend: give its pool ours, built with
        # the same options httpx would use.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(policy, subject),
        )
    return transport


class ConnectionTransport(httpx.AsyncBaseTransport):
    """Adds `headers` to the requests for `origin` (those a request sets itself win)."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, origin: Origin | None, headers: Mapping[str, str]
    ) -> None:
        self._inner = inner
        self._origin = origin
        self._headers = dict(headers)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._headers and origin_of(request.url) == self._origin:
            # A copy: httpx builds a redirect from the request it sent, and the headers must
            # not follow it to another origin.
            headers = httpx.Headers(self._headers)
            headers.update(request.headers)
            request = httpx.Request(
                request.method,
                request.url,
                headers=headers,
                stream=request.stream,
                extensions=request.extensions,
            )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

"""redis-py connections that connect to a checked address instead of resolving their host.

Imported only when a Redis connection opens under a policy that checks addresses, since it
subclasses redis-py's classes. TLS (`rediss://`) still sends and verifies the host name.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Any

from redis.asyncio.connection import Connection, SSLConnection

from app.connections.destinations import Destination
from app.connections.sockets import connect_socket


class PinnedConnection(Connection):
    def __init__(self, *, destination: Destination, **kwargs: Any) -> None:
        self.destination = destination
        self._socket: socket.socket | None = None
        super().__init__(**kwargs)

    async def _connect(self) -> None:
        async with asyncio.timeout(self.socket_connect_timeout):
            self._socket = await connect_socket(self.destination)
        try:
            await super()._connect()  # type: ignore[no-untyped-call]
        except BaseException:
            self._socket.close()
            raise
        finally:
            self._socket = None

    def _connection_arguments(self) -> Mapping[str, Any]:
        arguments = {
            key: value
            for key, value in super()._connection_arguments().items()
            if key not in ("host", "port")
        }
        arguments["sock"] = self._socket
        if arguments.get("ssl") is not None:
            arguments["server_hostname"] = self.host  # SNI and verification use the name
        return arguments


class PinnedSSLConnection(PinnedConnection, SSLConnection):
    pass

"""Opening a TCP socket to a checked address (never to a name resolved again)."""

from __future__ import annotations

import asyncio
import socket

from app.connections.destinations import Destination


async def connect_socket(destination: Destination) -> socket.socket:
    """A connected, non-blocking socket to the first of the destination's addresses that
    accepts; the caller bounds the time (`asyncio.timeout`)."""
    loop = asyncio.get_running_loop()
    failure: OSError | None = None
    for address in destination.addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (address, destination.port))
        except OSError as error:
            sock.close()
            failure = error
        except BaseException:
            sock.close()
            raise
        else:
            return sock
    assert failure is not None, "a destination always has an address"
    raise failure

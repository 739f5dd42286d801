"""A TCP listener on loopback that records whether anything reached it.

`silent=True` accepts connections and never answers (nor closes them until the test ends): the
server that froze every other flow's pools before opens got a lock per configuration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class Listener:
    host: str
    port: int
    accepted: int = 0
    _held: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def reached(self) -> bool:
        return self.accepted > 0


@asynccontextmanager
async def listening(*, silent: bool = False) -> AsyncIterator[Listener]:
    state: Listener | None = None

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert state is not None
        state.accepted += 1
        if silent:
            state._held.append(writer)  # keep it open, say nothing
        else:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state = Listener("127.0.0.1", port)
    try:
        yield state
    finally:
        for writer in state._held:
            writer.close()
        server.close()
        await server.wait_closed()

"""Reading server-sent events in tests: the messages of a stream, and the service over real
HTTP (httpx's ASGI transport answers a response only once it is complete, which a live stream
never is)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.main import create_app
from app.settings import Settings
from tests.api.processes import free_port
from tests.api.support import ROOT, TASK_MODULES
from tests.polling import until

COMMENT = "comment"


@dataclass
class Message:
    """One SSE message: its id and data (JSON), or a comment."""

    id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    comment: str | None = None

    @property
    def event_id(self) -> int:
        assert self.id is not None, f"an event without an id: {self.data}"
        return self.id

    @property
    def step(self) -> tuple[str | None, str]:
        return self.data.get("step_id"), self.data["status"]


def parse(text: str) -> list[Message]:
    """The messages of a whole stream's text."""
    messages: list[Message] = []
    for block in text.split("\n\n"):
        message = _message(block.split("\n"))
        if message is not None:
            messages.append(message)
    return messages


def _message(lines: list[str]) -> Message | None:
    message = Message()
    seen = False
    for line in lines:
        if line.startswith(":"):
            return Message(comment=line[1:].strip())
        name, _, value = line.partition(": ")
        if name == "id":
            message.id, seen = int(value), True
        elif name == "data":
            message.data, seen = json.loads(value), True
    return message if seen else None


def events(text: str) -> list[Message]:
    return [message for message in parse(text) if message.comment is None]


async def read_stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[Message]:
    """The messages of a live stream, as they come, until it ends."""
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        block: list[str] = []
        async for line in response.aiter_lines():
            if line:
                block.append(line)
                continue
            message = _message(block)
            block = []
            if message is not None:
                yield message


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind uvicorn in this event loop, and a client of it over real HTTP."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or serving.done(), deadline=20)
        assert not serving.done(), "uvicorn stopped at start"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            yield client
    finally:
        server.should_exit = True
        await serving


def start_worker(database_url: str, directory: Path) -> subprocess.Popen[bytes]:
    """`python -m app worker` on the store, with the API tests' tasks; its log in
    `directory`."""
    environment = os.environ | {
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "MIGRATE_ON_START": "false",
        "TASK_MODULES": ",".join(TASK_MODULES),
        "FLOW_FILES": "",
        "POLL_INTERVAL": "0.05",
        "PYTHONUNBUFFERED": "1",
    }
    with (directory / "worker.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            cwd=directory,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

"""A `watch` command in a process of its own, as a user runs it, and what it printed so far.

Each wait polls the output with a deadline (tests/polling.py), never sleeps and hopes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.polling import until

DEADLINE = 30.0  # a cold start of the interpreter on a busy machine, and a debounced save


@dataclass
class Watching:
    """A running `watch` and everything it printed so far."""

    process: asyncio.subprocess.Process
    output: str = ""
    reader: asyncio.Task[None] | None = field(default=None, repr=False)

    async def read(self) -> None:
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(4096):
            self.output += chunk.decode()

    async def shows(self, *texts: str, after: int = 0) -> int:
        """Wait until every text appears past `after`; where the output ends now."""
        try:
            await until(lambda: all(text in self.output[after:] for text in texts), DEADLINE)
        except TimeoutError:
            pytest.fail(f"never printed {texts}; printed:\n{self.output[after:]}")
        return len(self.output)


@asynccontextmanager
async def watching(
    command: Sequence[str], directory: Path, environment: Mapping[str, str]
) -> AsyncIterator[Watching]:
    """`command` run in `directory` with `environment` over ours (a wide terminal, so that
    rich does not wrap what tests look for); killed afterwards if still running."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=directory,
        env={**os.environ, "COLUMNS": "200", **environment},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    watch = Watching(process)
    watch.reader = asyncio.create_task(watch.read())
    try:
        yield watch
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await watch.reader

"""The service in a process of its own, as users run it, spoken to over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.support import ROOT

START_DEADLINE_SECONDS = 30.0
STOP_DEADLINE_SECONDS = 20.0
SERVE = [sys.executable, "-m", "app", "serve"]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> int:
        """SIGTERM, as an orchestrator stops it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=STOP_DEADLINE_SECONDS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def started_server(
    command: Sequence[str], port: int, settings: Mapping[str, str], directory: Path
) -> Iterator[Server]:
    """`command` (serving on 127.0.0.1:`port`) with `settings` over a test's defaults, run in
    `directory` (away from any .env of the repository); killed afterwards if still running."""
    environment = os.environ | {
        "PYTHONPATH": str(ROOT),
        "MIGRATE_ON_START": "true",
        "POLL_INTERVAL": "0.05",
        **settings,
    }
    log = directory / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=directory, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    running = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until_healthy(running)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_until_healthy(server: Server) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while True:
        code = server.process.poll()
        if code is not None:
            pytest.fail(f"the server exited with {code}:\n{server.log.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the server did not answer /health in time:\n{server.log.read_text()}")
        time.sleep(0.05)  # between polls of a process that is starting

"""`app.main.app`, for `uvicorn app.main:app`: building it does no I/O but reading settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.api.processes import free_port
from tests.api.support import ROOT

# Run in a fresh interpreter: records every socket connection attempted (the audit hook sees
# all of them, whatever library makes them) and the threads alive once the app is built.
PROBE = """
import json, sys, threading
connections = []
sys.addaudithook(
    lambda event, args: connections.append(repr(args[1])) if event == "socket.connect" else None
)
import app.main
built = app.main.app
from app.main import app as imported
print(json.dumps({
    "connections": connections,
    "threads": [thread.name for thread in threading.enumerate()],
    "same": built is imported,
    "routes": len(built.routes),
}))
"""


def test_importing_the_module_level_app_connects_to_nothing(tmp_path: Path) -> None:
    closed_port = free_port()  # nothing listens there: a connection attempt would fail loudly
    environment = os.environ | {
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"postgresql://flows@127.0.0.1:{closed_port}/flows",
    }

    finished = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,  # away from any .env of the repository
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    probe = json.loads(finished.stdout)
    assert probe["connections"] == []
    assert probe["threads"] == ["MainThread"]
    assert probe["same"]  # built once: `from app.main import app` is the same app
    assert probe["routes"] > 0

"""schemathesis over the OpenAPI, against `python -m app serve` on SQLite and on PostgreSQL.

The standing hostile-request suite: the schema's examples, its coverage cases, random requests
and stateful sequences, with the checks of `schemathesis.toml` (no 5xx, and the statuses,
content types, headers and bodies the API documents). A flow is registered first under the
name the schema's examples use, so that they reach the execution of runs.

The examples per operation are bounded (`max-examples`) and the seed is fixed, so the suite is
deterministic; `FUZZ_SEED=<n>` explores other cases, `FUZZ_EXAMPLES=<n>` more of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.processes import SERVE, Server, free_port, started_server
from tests.api.support import ADMIN_KEY, ROOT, YAML

AUTHORIZATION = {"Authorization": f"Bearer {ADMIN_KEY}"}

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = int(os.environ.get("FUZZ_SEED", "20240601"))
EXAMPLES = os.environ.get("FUZZ_EXAMPLES")
RUN_DEADLINE_SECONDS = 240

# Named as the schema's examples name a flow, with the input their bodies send.
USER_MANAGER = """\
flow: UserManager
inputs:
  user_id: {type: integer, default: 0}
steps:
  - set: {id: double, values: {user: "${inputs.user_id * 2}"}}
  - set: {id: named, if: "${double.user} > 10", values: {name: "user ${double.user}"}}
outputs:
  user: ${double.user}
  name: ${named.name}
"""


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    settings = {
        "DATABASE_URL": database_url,
        "AUTH": "on",  # so that the authentication checks see it refuse what it must
        "ADMIN_API_KEY": ADMIN_KEY,
        "LOG_LEVEL": "warning",
        "EXECUTE_WAIT_SECONDS": "2",
        "MAX_WAIT_SECONDS": "2",
    }
    command = [*SERVE, "--host", "127.0.0.1", "--port", str(port)]
    with started_server(command, port, settings, tmp_path) as running:
        yield running


@pytest.mark.timeout(RUN_DEADLINE_SECONDS + 60)
def test_schemathesis_finds_nothing(server: Server, tmp_path: Path) -> None:
    until_the_key_works(server.url)
    registered = httpx.post(
        f"{server.url}/flows", content=USER_MANAGER, headers={**YAML, **AUTHORIZATION}
    )
    assert registered.status_code == 201, registered.text

    run = schemathesis(server.url, tmp_path)

    assert run.returncode == 0, run.stdout[-20_000:]
    assert "Traceback" not in server.log.read_text(), server.log.read_text()[-5000:]


def until_the_key_works(url: str) -> None:
    """ADMIN_API_KEY is installed in the background as the server starts."""
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/me", headers=AUTHORIZATION).status_code != 200:
        assert time.monotonic() < deadline, "the server never accepted ADMIN_API_KEY"
        time.sleep(0.05)  # between polls of a process that is starting


def schemathesis(url: str, directory: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{url}/openapi.json",
        "--seed",
        str(SEED),
        "--header",
        f"Authorization: {AUTHORIZATION['Authorization']}",
    ]
    if EXAMPLES:
        command += ["--max-examples", EXAMPLES]
    return subprocess.run(
        command,
        cwd=directory,  # its reports and caches stay out of the repository
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE_SECONDS,
        check=False,
    )

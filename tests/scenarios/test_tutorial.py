"""The FlowLang tutorial (seed 000), end to end against the real PostgreSQL and Redis."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from types import ModuleType

import asyncpg
import httpx
import pytest

from app.engine import FlowExecutor
from app.tasks.loading import load_task_modules
from tests.api.processes import free_port, started_server
from tests.scenarios.tutorial_text import run

TUTORIAL = Path(__file__).resolve().parents[2] / "examples" / "tutorial"
FLOW_YAML = (TUTORIAL / "flow.yaml").read_text()


def load_setup_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tutorial_setup_db", TUTORIAL / "setup_db.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def users_db(postgres_url: str) -> str:
    """The tutorial's users table with its three sample users (Step 3)."""
    assert await load_setup_module().setup_database(postgres_url) == 3
    return postgres_url


@pytest.fixture
def executor(users_db: str, redis_url: str, tutorial_keys: None) -> FlowExecutor:
    registry = load_task_modules([str(TUTORIAL / "flow.py")])
    return FlowExecutor(registry, env={"DATABASE_URL": users_db, "REDIS_URL": redis_url})


async def test_first_run_reads_the_database_then_the_cache_answers(
    executor: FlowExecutor, users_db: str
) -> None:
    first = await executor.execute_flow(FLOW_YAML, inputs={"user_id": 1})

    assert first["user"]["name"] == "Alice Smith"
    assert first["user"]["email"] == "alice@example.com"
    assert first["user"]["status"] == "active"
    assert first["from_cache"] is False
    assert first["total_views"] == 1

    second = await executor.execute_flow(FLOW_YAML, inputs={"user_id": 1})

    assert second["from_cache"] is True
    assert second["user"] == first["user"]  # served from Redis, decoded from JSON
    assert second["total_views"] == 2

    connection = await asyncpg.connect(users_db)
    try:
        last_login = await connection.fetchval("SELECT last_login FROM users WHERE id = 1")
        untouched = await connection.fetchval("SELECT last_login FROM users WHERE id = 2")
    finally:
        await connection.close()
    assert last_login is not None  # UpdateLastLogin ran on the cache miss
    assert untouched is None


async def test_unknown_user_fails_in_transform_with_the_tutorials_error(
    executor: FlowExecutor,
) -> None:
    result = await executor.run(FLOW_YAML, inputs={"user_id": 999})

    assert result.error is not None
    assert result.error.step == "transform"
    assert result.error.message == (
        "input 'user_data' = `${fetch_from_db.rows[0]}`: `fetch_from_db.rows` is empty "
        "(an array of length 0), so it has no index 0"
    )


async def test_the_tutorials_test_flow_script_prints_the_expected_output(
    users_db: str, redis_url: str, tutorial_keys: None
) -> None:
    repo = TUTORIAL.parents[1]
    env = {"DATABASE_URL": users_db, "REDIS_URL": redis_url, "PYTHONPATH": str(repo)}

    done = run([sys.executable, "test_flow.py"], TUTORIAL, env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == STEP_8_OUTPUT


# What the tutorial shows test_flow.py printing (Step 8): on a cold cache only.
STEP_8_OUTPUT = [
    "Testing user_id = 1...",
    "",
    "✅ Flow executed successfully!",
    "   User: Alice Smith (alice@example.com)",
    "   From cache: False",
    "   Total views: 1",
    "",
    "Testing again (should use cache)...",
    "   From cache: True",
    "   Cache hit: ✅",
]


def readme_commands() -> tuple[list[str], list[str]]:
    """The README's commands that make Step 8's output reproducible, as written there: the
    `redis-cli DEL` of the tutorial's keys and the `psql` that resets `last_login`."""
    readme = (TUTORIAL.parents[1] / "README.md").read_text()
    clear = re.search(r"^(redis-cli DEL [^#\n]*?)\s*#", readme, re.MULTILINE)
    reset = re.search(r"`(psql [^`]*)`", readme)
    assert clear, "the README no longer says how to clear the tutorial's keys"
    assert reset, "the README no longer says how to reset last_login"
    return shlex.split(clear.group(1)), shlex.split(reset.group(1))


def require_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; CI requires it", pytrace=False)
        pytest.skip(f"{name} is not installed")
    return found


async def test_the_readmes_commands_give_step_8_its_output_again(
    users_db: str, redis_url: str, tutorial_keys: None
) -> None:
    redis_cli, psql = require_tool("redis-cli"), require_tool("psql")
    repo = TUTORIAL.parents[1]
    env = {"DATABASE_URL": users_db, "REDIS_URL": redis_url, "PYTHONPATH": str(repo)}
    first = run(
        [sys.executable, "test_flow.py"], TUTORIAL, env
    )  # caches user 1, sets its last_login
    clear, reset = readme_commands()

    # Against the tests' Redis and users database rather than the .env's (the README's -u).
    cleared = run([redis_cli, "-u", redis_url, *clear[1:]], TUTORIAL, {})
    was_reset = run([psql, users_db, *reset[2:]], TUTORIAL, {})
    again = run([sys.executable, "test_flow.py"], TUTORIAL, env)

    assert first.stdout.splitlines() == STEP_8_OUTPUT, first.stderr
    assert (cleared.returncode, cleared.stdout.strip()) == (0, "2"), cleared.stderr  # both keys
    assert was_reset.returncode == 0, was_reset.stderr
    assert again.stdout.splitlines() == STEP_8_OUTPUT, again.stderr


async def test_cli_runs_the_tutorial_flow_and_prints_outputs_as_json(
    users_db: str, redis_url: str, tutorial_keys: None
) -> None:
    repo = TUTORIAL.parents[1]
    env = {"DATABASE_URL": users_db, "REDIS_URL": redis_url}
    args = ["-m", "app", "run", str(TUTORIAL / "flow.yaml"), "--inputs", '{"user_id": 2}']

    done = run([sys.executable, *args], repo, env)

    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)
    assert outputs["user"]["name"] == "Bob Johnson"
    assert outputs["from_cache"] is False
    assert outputs["total_views"] == 1


async def test_the_scaffolded_server_answers_the_tutorials_curl_requests(
    users_db: str, redis_url: str, tutorial_keys: None, tmp_path: Path
) -> None:
    """Step 7 then Step 8's "Test via API Server": scaffold, `./tools/start_server.sh`, and the
    two POSTs (the second served from the cache)."""
    for name in ("flow.yaml", "flow.py"):
        shutil.copy(TUTORIAL / name, tmp_path / name)
    (tmp_path / ".env").write_text(f"DATABASE_URL={users_db}\nREDIS_URL={redis_url}\n")
    scaffold = run(
        [sys.executable, "-m", "flowlang.scaffolder", "scaffold", "flow.yaml", "-o", "."],
        tmp_path,
        {"PYTHONPATH": str(TUTORIAL.parents[1])},
    )
    assert scaffold.returncode == 0, scaffold.stderr
    port = free_port()
    command = [str(tmp_path / "tools" / "start_server.sh")]
    settings = {"PORT": str(port), "PYTHON": sys.executable}

    with started_server(command, port, settings, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            first = await client.post("/flows/UserManager/execute", json={"inputs": {"user_id": 1}})
            second = await client.post(
                "/flows/UserManager/execute", json={"inputs": {"user_id": 1}}
            )

    assert first.status_code == 200, first.text
    assert first.json()["status"] == "completed", first.text
    assert first.json()["outputs"]["from_cache"] is False
    assert first.json()["outputs"]["user"]["name"] == "Alice Smith"
    assert second.json()["outputs"]["from_cache"] is True

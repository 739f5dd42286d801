"""Where the suite's PostgreSQL, MariaDB and Redis are, and what it may do there, as set by the
environment (the README's test command section)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.support import ROOT

PROBE = """
import json
from tests.databases import unique_database_name
from tests.servers import REDIS_HOST, REDIS_PORT, REDIS_URL
print(json.dumps({
    "database": unique_database_name("fm_test"),
    "redis": [REDIS_URL, REDIS_HOST, REDIS_PORT],
}))
"""
SETTINGS = (
    "TEST_DATABASE_PREFIX",
    "TEST_REDIS_URL",
    "TEST_REDIS_HOST",
    "TEST_REDIS_PORT",
    "TEST_REDIS_DB",
)


def probe(**settings: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key not in SETTINGS}
    environment |= {"PYTHONPATH": str(ROOT), **settings}
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def places(**settings: str) -> dict[str, object]:
    finished = probe(**settings)
    assert finished.returncode == 0, finished.stderr
    found: dict[str, object] = json.loads(finished.stdout)
    return found


def test_by_default_databases_are_fm_names_and_redis_is_db_0_on_loopback() -> None:
    found = places()

    assert re.fullmatch(r"fm_test_[0-9a-f]{12}", str(found["database"]))
    assert found["redis"] == ["redis://127.0.0.1:6379/0", "127.0.0.1", 6379]


def test_the_database_prefix_and_the_redis_db_are_set_by_the_environment() -> None:
    found = places(TEST_DATABASE_PREFIX="ada_", TEST_REDIS_DB="5", TEST_REDIS_PORT="6380")

    assert re.fullmatch(r"ada_fm_test_[0-9a-f]{12}", str(found["database"]))
    assert found["redis"] == ["redis://127.0.0.1:6380/5", "127.0.0.1", 6380]


def test_a_whole_redis_url_wins_over_its_parts() -> None:
    found = places(TEST_REDIS_URL="redis://cache.test:7000/9", TEST_REDIS_DB="5")

    assert found["redis"] == ["redis://cache.test:7000/9", "cache.test", 7000]


@pytest.mark.parametrize("prefix", ['x"; DROP DATABASE postgres; --', "a" * 33])
def test_a_prefix_that_cannot_name_a_database_is_refused(prefix: str) -> None:
    finished = probe(TEST_DATABASE_PREFIX=prefix)

    assert finished.returncode != 0
    assert "TEST_DATABASE_PREFIX" in finished.stderr


def test_no_test_flushes_a_redis_database() -> None:
    """The machine's Redis is shared: a test deletes the keys it wrote, never a database."""
    flushing = re.compile(r"\.(flushdb|flushall)\(|\b(FLUSHDB|FLUSHALL)\b")
    found = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path != Path(__file__) and flushing.search(path.read_text())
    ] + [
        str(path.relative_to(ROOT))
        for path in (ROOT / "scripts").iterdir()
        if path.is_file() and flushing.search(path.read_text())
    ]

    assert found == []

"""Reaching the real services of the test machine.

A test that needs PostgreSQL or Redis skips with a reason when the server is absent, and fails
instead when `CI` is set, so that CI can never pass by skipping.

Where they are comes from the environment (the README's test command lists these):
TEST_POSTGRES_HOST/PORT/USER, TEST_MARIADB_HOST/PORT/USER (tests/databases.py), and for Redis
either TEST_REDIS_URL whole (`redis://127.0.0.1:6379/5`) or TEST_REDIS_HOST/PORT/DB. The suite
never flushes a Redis database: each test writes under a key prefix of its own (or the
tutorial's fixed keys, under a lock) and deletes what it wrote, so choosing a database of
one's own (TEST_REDIS_DB) only keeps others' keys out of sight.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

POSTGRES_HOST = os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("TEST_POSTGRES_PORT", "5432"))
POSTGRES_USER = os.environ.get("TEST_POSTGRES_USER", "postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL") or (
    f"redis://{os.environ.get('TEST_REDIS_HOST', '127.0.0.1')}"
    f":{os.environ.get('TEST_REDIS_PORT', '6379')}/{os.environ.get('TEST_REDIS_DB', '0')}"
)
REDIS_HOST = urlsplit(REDIS_URL).hostname or "127.0.0.1"
REDIS_PORT = urlsplit(REDIS_URL).port or 6379


def require_service(name: str, host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as error:
        reason = f"{name} is not reachable at {host}:{port} ({error})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI requires it", pytrace=False)
        pytest.skip(reason)

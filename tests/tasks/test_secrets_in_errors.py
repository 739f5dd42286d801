"""No error a step records carries a connection's password or a secret query parameter, for
every plugin: the run's error as the engine records it, and the exception's repr."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.domain.runs import RunStatus
from app.engine import FlowExecutor
from tests.http_server import refused_url

SECRETS = ("s3cr3t-pw", "q-s3cr3t", "t0k3n")


@pytest.fixture
def port() -> Iterator[int]:
    with refused_url() as url:
        yield int(url.rsplit(":", 1)[1])


FLOWS = {
    "postgres": """
flow: Secret
connections:
  db: {type: postgres, url: "${env.URL}", timeout: 5}
steps:
  - pg_query: {id: read, connection: db, query: "SELECT 1"}
""",
    "redis": """
flow: Secret
connections:
  cache: {type: redis, url: "${env.URL}"}
steps:
  - redis_get: {id: read, connection: cache, key: k}
""",
    "http": """
flow: Secret
connections:
  api: {type: http, base_url: "${env.URL}", timeout: 5}
steps:
  - http_request: {id: read, connection: api, path: /users}
""",
    "http_request": """
flow: Secret
steps:
  - http_request: {id: read, url: "${inputs.url}"}
inputs: {url: {type: string}}
""",
}


def url_for(kind: str, port: int) -> str:
    return {
        "postgres": f"postgresql://app:s3cr3t-pw@127.0.0.1:{port}/db?sslpassword=q-s3cr3t",
        "redis": f"redis://app:s3cr3t-pw@127.0.0.1:{port}/0?password=q-s3cr3t",
        "http": f"http://app:s3cr3t-pw@127.0.0.1:{port}/v1?access_token=t0k3n",
        "http_request": f"http://app:s3cr3t-pw@127.0.0.1:{port}/v1?access_token=t0k3n",
    }[kind]


@pytest.mark.parametrize("kind", sorted(FLOWS))
async def test_a_failed_connection_never_shows_its_secrets(kind: str, port: int) -> None:
    url = url_for(kind, port)
    executor = FlowExecutor(env={"URL": url})

    result = await executor.run(FLOWS[kind], {"url": url} if kind == "http_request" else {})

    assert result.status is RunStatus.FAILED
    assert result.error is not None
    message = result.error.message
    assert "***" in message
    assert f"127.0.0.1:{port}" in message  # where it failed is still shown
    for secret in SECRETS:
        assert secret not in message
        assert secret not in repr(result.error)

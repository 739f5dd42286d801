"""What a flow may reach, end to end (DESIGN.md section 7): with authentication on, a flow
registered over the API cannot reach the machine's own services, by any spelling, unless
CONNECTION_ALLOWLIST lists them; the service's own store stays out of reach even then."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.settings import Settings
from tests.api.support import As, admin_of, auth_settings, serve
from tests.listener import Listener, listening

SPELLINGS = ["127.0.0.1", "localhost", "127.1", "0x7f.1", "2130706433", "[::ffff:127.0.0.1]"]


def probe(url: str) -> str:
    return f"""\
flow: Probe
steps:
  - http_request: {{id: call, url: "{url}", timeout: 5}}
"""


def store_probe(url: str) -> str:
    return f"""\
flow: StoreProbe
connections:
  store: {{type: postgres, url: "{url}"}}
steps:
  - pg_query: {{id: steal, connection: store, query: "SELECT current_user AS who"}}
"""


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    async with listening() as opened:
        yield opened


@pytest.fixture
def settings(database_url: str) -> Settings:
    return auth_settings(database_url)


async def run(caller: As, source: str, flow: str) -> dict[str, object]:
    await caller.register(source)
    response = await caller.post(f"/flows/{flow}/execute", json={})
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


@pytest.mark.parametrize("host", SPELLINGS)
async def test_a_flow_cannot_reach_loopback_by_any_spelling(
    admin: As, listener: Listener, host: str
) -> None:
    answer = await run(admin, probe(f"http://{host}:{listener.port}/"), "Probe")

    assert answer["status"] == "failed"
    assert "CONNECTION_ALLOWLIST" in str(answer["error"])
    assert not listener.reached


async def test_an_allow_listed_host_is_reached(database_url: str, listener: Listener) -> None:
    settings = auth_settings(database_url, connection_allowlist=["127.0.0.1"])
    async with serve(settings) as client:
        admin = await admin_of(client)
        answer = await run(admin, probe(f"http://127.0.0.1:{listener.port}/"), "Probe")

    assert listener.reached
    assert "CONNECTION_ALLOWLIST" not in str(answer["error"])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_service_store_is_refused_even_when_its_host_is_allow_listed(
    database_url: str,
) -> None:
    settings = auth_settings(database_url, connection_allowlist=["127.0.0.1"])
    plain = database_url.replace("postgresql+asyncpg://", "postgresql://")
    async with serve(settings) as client:
        admin = await admin_of(client)
        answer = await run(admin, store_probe(plain), "StoreProbe")

    assert answer["status"] == "failed"
    assert "CONNECTION_ALLOW_STORE" in str(answer["error"])

"""Limits per caller: runs started per minute per key, flows, versions and keys per user."""

from __future__ import annotations

import httpx
import pytest

from app.settings import Settings
from tests.api.flows import GREET_YAML
from tests.api.support import YAML, As, add_user, admin_of, auth_settings

OTHER_YAML = GREET_YAML.replace("flow: Greet", "flow: Other")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return auth_settings(
        database_url,
        runs_per_minute=2,
        max_flows_per_user=1,
        max_versions_per_user=2,
        max_keys_per_user=2,
    )


@pytest.fixture
async def ada(client: httpx.AsyncClient) -> As:
    return await add_user(await admin_of(client), "ada")


async def test_a_key_starting_too_many_runs_gets_429_with_retry_after(ada: As) -> None:
    await ada.register(GREET_YAML)
    body = {"inputs": {"name": "x"}}

    answers = [await ada.post("/flows/Greet/runs", json=body) for _ in range(3)]
    executed = await ada.post("/flows/Greet/execute", json=body)

    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert executed.status_code == 429
    assert 1 <= int(answers[2].headers["retry-after"]) <= 30
    assert "RUNS_PER_MINUTE" in answers[2].json()["detail"]
    assert len((await ada.get("/runs")).json()["items"]) == 2


async def test_another_key_has_a_bucket_of_its_own(ada: As, client: httpx.AsyncClient) -> None:
    await ada.register(GREET_YAML)
    for _ in range(2):
        await ada.post("/flows/Greet/runs", json={"inputs": {"name": "x"}})
    second_key = (await ada.post("/keys", json={"name": "second"})).json()["key"]

    response = await As(client, second_key).post(
        "/flows/Greet/runs", json={"inputs": {"name": "x"}}
    )

    assert response.status_code == 202


async def test_a_user_cannot_own_more_flows_than_the_limit(ada: As) -> None:
    await ada.register(GREET_YAML)

    refused = await ada.post("/flows", content=OTHER_YAML, headers=YAML)

    assert refused.status_code == 409
    assert "MAX_FLOWS_PER_USER" in refused.json()["detail"]
    assert [flow["name"] for flow in (await ada.get("/flows")).json()] == ["Greet"]


async def test_a_user_cannot_register_more_versions_than_the_limit(ada: As) -> None:
    await ada.register(GREET_YAML)
    await ada.register(GREET_YAML + "# 2\n")

    refused = await ada.post("/flows", content=GREET_YAML + "# 3\n", headers=YAML)
    unchanged = await ada.post("/flows", content=GREET_YAML + "# 2\n", headers=YAML)

    assert refused.status_code == 409
    assert "MAX_VERSIONS_PER_USER" in refused.json()["detail"]
    assert unchanged.status_code == 200  # the same text again makes no version


async def test_a_user_cannot_hold_more_keys_than_the_limit(ada: As) -> None:
    second = await ada.post("/keys", json={"name": "second"})
    third = await ada.post("/keys", json={"name": "third"})

    assert second.status_code == 201
    assert third.status_code == 409
    assert "MAX_KEYS_PER_USER" in third.json()["detail"]

"""Schedules over HTTP (DESIGN.md section 9): made, listed, read, changed and deleted; bad
crons, time zones and inputs answered 422 at their field; who may see and change them; a
definition's `schedules:`; and an every-second schedule starting runs in the served app."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from app.settings import Settings
from tests.api.flows import GREET_YAML
from tests.api.support import YAML, As, add_user, auth_settings
from tests.polling import until

UNKNOWN = "00000000-0000-4000-8000-000000000000"
WEEKDAYS = {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris", "inputs": {"name": "ada"}}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return auth_settings(database_url, schedule_poll_seconds=0.2)


@pytest.fixture
async def ada(admin: As) -> As:
    caller = await add_user(admin, "ada")
    await caller.register(GREET_YAML)
    return caller


@pytest.fixture
async def bob(admin: As) -> As:
    return await add_user(admin, "bob")


async def made(caller: As, body: dict[str, Any] = WEEKDAYS) -> dict[str, Any]:
    response = await caller.post("/flows/Greet/schedules", json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_made_schedule_answers_its_fields_and_next_fire_times(ada: As) -> None:
    schedule = await made(ada)

    assert {key: schedule[key] for key in ("flow", "cron", "timezone", "inputs")} == {
        "flow": "Greet",
        **WEEKDAYS,
    }
    assert (schedule["overlap"], schedule["enabled"], schedule["origin"]) == (
        "skip",
        True,
        "api",
    )
    assert schedule["created_by"] == "ada"
    times = [datetime.fromisoformat(moment) for moment in schedule["next_fire_times"]]
    assert len(times) == 5
    assert all(moment.utcoffset() == timedelta(0) for moment in times)
    assert all(moment.astimezone().weekday() < 5 for moment in times)
    assert times == sorted(times)


async def test_a_schedule_is_listed_read_changed_and_deleted(ada: As) -> None:
    schedule = await made(ada)
    path = f"/schedules/{schedule['id']}"

    assert [found["id"] for found in (await ada.get("/flows/Greet/schedules")).json()] == [
        schedule["id"]
    ]
    assert (await ada.get(path)).json() == schedule
    changed = await ada.patch(path, json={"enabled": False, "overlap": "allow"})
    assert changed.status_code == 200
    assert (changed.json()["enabled"], changed.json()["overlap"]) == (False, "allow")
    assert changed.json()["next_fire_times"] == []
    assert (await ada.delete(path)).status_code == 204
    assert (await ada.get(path)).status_code == 404


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"cron": "61 * * * *"}, ["body", "cron"]),
        ({"cron": "* * * * * * *"}, ["body", "cron"]),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, ["body", "timezone"]),
        ({"cron": "* * * * *", "inputs": {"name": 3}}, ["body", "inputs", "name"]),
        ({"cron": "* * * * *", "overlap": "sometimes"}, ["body", "overlap"]),
    ],
)
async def test_a_bad_schedule_is_refused_at_its_field(
    ada: As, body: dict[str, Any], loc: list[str]
) -> None:
    response = await ada.post("/flows/Greet/schedules", json={"inputs": {"name": "a"}, **body})

    assert response.status_code == 422
    assert [problem["loc"] for problem in response.json()["detail"]] == [loc]


async def test_a_bad_change_is_refused_at_its_field(ada: As) -> None:
    schedule = await made(ada)

    response = await ada.patch(f"/schedules/{schedule['id']}", json={"timezone": "Nowhere"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "timezone"]


async def test_schedules_of_a_flow_the_caller_may_not_see_answer_404(ada: As, bob: As) -> None:
    schedule = await made(ada)
    path = f"/schedules/{schedule['id']}"

    for response in [
        await bob.get(path),
        await bob.patch(path, json={"enabled": False}),
        await bob.delete(path),
        await bob.get("/flows/Greet/schedules"),
        await bob.post("/flows/Greet/schedules", json=WEEKDAYS),
        await ada.get(f"/schedules/{UNKNOWN}"),
    ]:
        assert response.status_code == 404, response.text


async def test_seeing_schedules_needs_view_and_changing_them_run(ada: As, bob: As) -> None:
    schedule = await made(ada)
    path = f"/schedules/{schedule['id']}"
    await ada.put("/flows/Greet/shares/bob", json={"permission": "view"})

    assert (await bob.get(path)).status_code == 200
    assert (await bob.patch(path, json={"enabled": False})).status_code == 403
    assert (await bob.post("/flows/Greet/schedules", json=WEEKDAYS)).status_code == 403
    await ada.put("/flows/Greet/shares/bob", json={"permission": "run"})
    assert (await bob.post("/flows/Greet/schedules", json=WEEKDAYS)).json()["created_by"] == "bob"


async def test_a_definitions_schedules_are_listed_as_declared(ada: As) -> None:
    declared = GREET_YAML + 'schedules:\n  - {cron: "0 6 * * *", inputs: {name: dawn}}\n'

    await ada.register(declared)

    [schedule] = (await ada.get("/flows/Greet/schedules")).json()
    assert (schedule["cron"], schedule["origin"], schedule["inputs"]) == (
        "0 6 * * *",
        "definition",
        {"name": "dawn"},
    )


async def test_a_bad_declared_cron_is_a_definition_problem_with_its_line(ada: As) -> None:
    declared = GREET_YAML + 'schedules:\n  - {cron: "0 25 * * *"}\n'

    response = await ada.post("/flows", content=declared, headers=YAML)

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["schedules", 0, "cron"]
    assert problem["line"] == declared.count("\n")


async def test_an_every_second_schedule_starts_runs_in_the_served_app(ada: As) -> None:
    await made(ada, {"cron": "* * * * * *", "overlap": "allow", "inputs": {"name": "tick"}})

    async def two_completed() -> bool:
        page = (await ada.get("/runs", params={"flow": "Greet", "status": "completed"})).json()
        return len(page["items"]) >= 2

    await until(two_completed, deadline=15, interval=0.1)

    runs = (await ada.get("/runs", params={"flow": "Greet"})).json()["items"]
    assert {run["inputs"]["name"] for run in runs} == {"tick"}

"""Who may do what with a flow and its runs (DESIGN.md section 7): owners, shares with a
permission, public flows; 404 for what a caller may not see, 403 for what it may see but not
change; lists filtered to what the caller may see."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.api.flow_manager_sample import SAMPLE
from tests.api.flows import GREET_YAML
from tests.api.support import YAML, As, add_user, auth_settings, poll_run

WAITING_YAML = """\
flow: Waiting
inputs:
  - {name: directory, type: string, required: true}
steps:
  - task: WaitForMarker
    id: wait
    inputs: {directory: "${inputs.directory}", marker: go}
outputs:
  waited: ${wait.waited}
"""
OTHER_YAML = GREET_YAML.replace("flow: Greet", "flow: Other")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return auth_settings(database_url)


@pytest.fixture
async def ada(admin: As) -> As:
    return await add_user(admin, "ada")


@pytest.fixture
async def bob(admin: As) -> As:
    return await add_user(admin, "bob")


async def run_greet(caller: As, name: str = "Greet") -> httpx.Response:
    return await caller.post(f"/flows/{name}/execute", json={"inputs": {"name": caller.name}})


async def test_each_user_sees_only_their_own_flows_and_runs(ada: As, bob: As, admin: As) -> None:
    await ada.register(GREET_YAML)
    await bob.register(OTHER_YAML)
    ada_run = (await run_greet(ada)).json()["run_id"]
    bob_run = (await run_greet(bob, "Other")).json()["run_id"]

    ada_flows = [flow["name"] for flow in (await ada.get("/flows")).json()]
    ada_runs = [run["run_id"] for run in (await ada.get("/runs")).json()["items"]]
    admin_runs = {run["run_id"] for run in (await admin.get("/runs")).json()["items"]}

    assert ada_flows == ["Greet"]
    assert ada_runs == [ada_run]
    assert [run["run_id"] for run in (await bob.get("/runs")).json()["items"]] == [bob_run]
    assert admin_runs == {ada_run, bob_run}
    assert (await ada.get("/runs", params={"flow": "Other"})).json()["items"] == []


async def test_what_a_caller_may_not_see_answers_404_as_if_it_did_not_exist(
    ada: As, bob: As
) -> None:
    await ada.register(GREET_YAML)
    run_id = (await run_greet(ada)).json()["run_id"]

    for method, path, body in [
        ("GET", "/flows/Greet", None),
        ("GET", "/flows/Greet/versions", None),
        ("GET", "/flows/Greet/versions/1", None),
        ("POST", "/flows/Greet/execute", {"inputs": {"name": "x"}}),
        ("POST", "/flows/Greet/runs", {"inputs": {"name": "x"}}),
        ("DELETE", "/flows/Greet", None),
        ("PATCH", "/flows/Greet", {"public": True}),
        ("GET", "/flows/Greet/shares", None),
        ("PUT", "/flows/Greet/shares/bob", {"permission": "admin"}),
        ("GET", f"/runs/{run_id}", None),
        ("GET", f"/runs/{run_id}/inputs", None),
        ("GET", f"/runs/{run_id}/outputs", None),
        ("GET", f"/runs/{run_id}/steps/greet/outputs", None),
        ("POST", f"/runs/{run_id}/cancel", None),
        ("POST", f"/runs/{run_id}/retry", None),
        ("POST", f"/runs/{run_id}/fork", {"from_step": "greet"}),
        ("GET", f"/runs/{run_id}/diff/{run_id}", None),
    ]:
        response = await bob.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert "Greet" not in response.text or "no flow" in response.text

    unknown = await bob.get("/flows/Nope")
    hidden = await bob.get("/flows/Greet")
    assert unknown.json()["detail"].replace("Nope", "X") == hidden.json()["detail"].replace(
        "Greet", "X"
    )
    assert (await ada.get("/flows/Greet")).status_code == 200


async def test_a_new_version_of_another_users_flow_is_refused(ada: As, bob: As) -> None:
    await ada.register(GREET_YAML)

    replaced = await bob.put("/flows/Greet", content=GREET_YAML + "# mine\n", headers=YAML)
    same = await bob.put("/flows/Greet", content=GREET_YAML, headers=YAML)

    assert (replaced.status_code, same.status_code) == (409, 409)
    assert "choose another name" in replaced.json()["detail"]
    assert "Hello" not in replaced.text  # nothing of the flow itself
    assert [v["version"] for v in (await ada.get("/flows/Greet/versions")).json()] == [1]


@pytest.mark.parametrize(
    ("permission", "may"),
    [
        ("view", {"read"}),
        ("run", {"read", "run"}),
        ("edit", {"read", "run", "edit"}),
        ("admin", {"read", "run", "edit", "share"}),
    ],
)
async def test_each_permission_includes_the_ones_before_it(
    ada: As, bob: As, permission: str, may: set[str]
) -> None:
    await ada.register(GREET_YAML)
    shared = await ada.put("/flows/Greet/shares/bob", json={"permission": permission})

    read = await bob.get("/flows/Greet")
    ran = await run_greet(bob)
    edited = await bob.put("/flows/Greet", content=GREET_YAML + "# v2\n", headers=YAML)
    shares = await bob.get("/flows/Greet/shares")

    assert shared.status_code == 201
    assert {
        action
        for action, response in [("read", read), ("run", ran), ("edit", edited), ("share", shares)]
        if response.status_code in (200, 201)
    } == may
    for response in (ran, edited, shares):  # what it may see but not do: 403, never 404
        assert response.status_code in (200, 201, 403)


async def test_a_viewer_reads_the_runs_of_a_shared_flow_but_cannot_cancel_them(
    ada: As, bob: As, tmp_path: Path
) -> None:
    await ada.register(WAITING_YAML)
    await ada.put("/flows/Waiting/shares/bob", json={"permission": "view"})
    started = await ada.post("/flows/Waiting/runs", json={"inputs": {"directory": str(tmp_path)}})
    run_id = started.json()["run_id"]

    read = await bob.get(f"/runs/{run_id}")
    cancelled = await bob.post(f"/runs/{run_id}/cancel")
    forked = await bob.post(f"/runs/{run_id}/fork", json={"from_step": "wait"})
    (tmp_path / "go").touch()

    assert read.status_code == 200
    assert read.json()["created_by"] == "ada"
    assert cancelled.status_code == 403
    assert forked.status_code == 403
    assert (await poll_run(ada.client, run_id, headers=ada.auth))["status"] == "completed"


async def test_a_share_removed_while_a_run_is_in_flight_lets_the_run_finish_but_not_be_seen(
    ada: As, bob: As, tmp_path: Path
) -> None:
    await ada.register(WAITING_YAML)
    await ada.put("/flows/Waiting/shares/bob", json={"permission": "run"})
    started = await bob.post("/flows/Waiting/runs", json={"inputs": {"directory": str(tmp_path)}})
    run_id = started.json()["run_id"]
    assert started.status_code == 202

    removed = await ada.delete("/flows/Waiting/shares/bob")
    (tmp_path / "go").touch()
    finished = await poll_run(ada.client, run_id, headers=ada.auth)

    assert removed.status_code == 204
    assert finished["status"] == "completed"
    assert finished["created_by"] == "bob"
    assert (await bob.get(f"/runs/{run_id}")).status_code == 404
    assert (await bob.get("/runs")).json()["items"] == []
    assert (await bob.post(f"/runs/{run_id}/retry")).status_code == 404


async def test_a_public_flow_is_viewable_by_every_user_but_runnable_only_when_shared(
    ada: As, bob: As
) -> None:
    await ada.register(GREET_YAML)

    made_public = await ada.patch("/flows/Greet", json={"public": True})
    listed = [flow["name"] for flow in (await bob.get("/flows")).json()]
    ran = await run_greet(bob)

    assert (made_public.status_code, made_public.json()["public"]) == (200, True)
    assert listed == ["Greet"]
    assert (await bob.get("/flows/Greet")).status_code == 200
    assert ran.status_code == 403
    assert (await bob.patch("/flows/Greet", json={"public": False})).status_code == 403


async def test_sharing_is_audited_and_listed(ada: As, bob: As, admin: As) -> None:
    await ada.register(GREET_YAML)

    first = await ada.put("/flows/Greet/shares/bob", json={"permission": "view"})
    changed = await ada.put("/flows/Greet/shares/bob", json={"permission": "run"})
    listed = await ada.get("/flows/Greet/shares")

    assert (first.status_code, changed.status_code) == (201, 200)
    assert [(s["user"], s["permission"]) for s in listed.json()] == [("bob", "run")]
    actions = [
        (entry["actor"], entry["action"], entry["target"])
        for entry in (await admin.get("/audit")).json()["items"]
    ]
    assert actions.count(("ada", "share.put", "Greet/bob")) == 2


async def test_sharing_with_an_unknown_user_or_the_owner_is_refused(ada: As) -> None:
    await ada.register(GREET_YAML)

    unknown = await ada.put("/flows/Greet/shares/nobody", json={"permission": "view"})
    owner = await ada.put("/flows/Greet/shares/ada", json={"permission": "view"})
    bad = await ada.put("/flows/Greet/shares/bob", json={"permission": "owner"})

    assert unknown.status_code == 404
    assert owner.status_code == 409
    assert bad.status_code == 422


async def test_versions_record_who_registered_them_and_why(ada: As, bob: As) -> None:
    await ada.register(GREET_YAML)
    await ada.put("/flows/Greet/shares/bob", json={"permission": "edit"})

    second = await bob.put(
        "/flows/Greet",
        content=GREET_YAML + "# v2\n",
        headers={**YAML, "X-Change-Notes": "louder"},
    )
    third = await ada.post(
        "/flows", content=GREET_YAML + "# v3\n", headers=YAML, params={"change_notes": "quieter"}
    )
    versions = (await ada.get("/flows/Greet/versions")).json()

    assert (second.status_code, third.status_code) == (201, 201)
    assert [(v["version"], v["created_by"], v["change_notes"]) for v in versions] == [
        (1, "ada", None),
        (2, "bob", "louder"),
        (3, "ada", "quieter"),
    ]
    detail = (await bob.get("/flows/Greet/versions/2")).json()
    assert (detail["owner"], detail["created_by"], detail["change_notes"]) == (
        "ada",
        "bob",
        "louder",
    )


async def test_an_idempotency_key_repeats_only_the_same_callers_request(ada: As, bob: As) -> None:
    await ada.register(GREET_YAML)
    await ada.register(OTHER_YAML)
    await ada.put("/flows/Greet/shares/bob", json={"permission": "run"})
    key = {"Idempotency-Key": "same-key"}
    body = {"inputs": {"name": "x"}}

    first = await ada.post("/flows/Greet/runs", json=body, headers=key)
    repeated = await ada.post("/flows/Greet/runs", json=body, headers=key)
    other_flow = await ada.post("/flows/Other/runs", json=body, headers=key)
    other_caller = await bob.post("/flows/Greet/runs", json=body, headers=key)

    assert (first.status_code, repeated.status_code) == (202, 200)
    assert repeated.json()["run_id"] == first.json()["run_id"]
    assert other_flow.status_code == 202
    assert other_caller.status_code == 202
    ids = {r.json()["run_id"] for r in (first, other_flow, other_caller)}
    assert len(ids) == 3


async def test_deleting_a_flow_needs_the_admin_permission(ada: As, bob: As) -> None:
    await ada.register(GREET_YAML)
    await ada.put("/flows/Greet/shares/bob", json={"permission": "edit"})

    refused = await bob.delete("/flows/Greet")
    deleted = await ada.delete("/flows/Greet")

    assert refused.status_code == 403
    assert deleted.status_code == 204
    assert (await ada.get("/flows")).json() == []


async def test_a_flow_name_freed_by_deletion_may_be_taken_by_another_user(ada: As, bob: As) -> None:
    await ada.register(GREET_YAML)
    assert (await bob.get("/flows/Greet")).status_code == 404  # bob's process caches this

    await ada.delete("/flows/Greet")
    await bob.register(GREET_YAML)

    assert (await bob.get("/flows/Greet")).json()["owner"] == "bob"
    assert (await ada.get("/flows/Greet")).status_code == 404


async def test_the_flow_manager_endpoint_runs_only_flows_the_caller_may_run(
    ada: As, bob: As
) -> None:
    first = await ada.post("/flow/run", json=SAMPLE)
    by_bob = await bob.post("/flow/run", json=SAMPLE)
    await ada.put(f"/flows/{SAMPLE['flow']['id']}/shares/bob", json={"permission": "run"})
    shared = await bob.post("/flow/run", json=SAMPLE)

    assert first.status_code == 200
    assert by_bob.status_code == 409  # the graph's id names ada's flow
    assert shared.status_code == 200


async def test_an_owner_who_gives_a_flow_away_is_answered_and_then_sees_it_no_more(
    ada: As, bob: As
) -> None:
    await ada.register(GREET_YAML)

    given = await ada.patch("/flows/Greet", json={"owner": "bob"})

    assert (given.status_code, given.json()["owner"]) == (200, "bob")
    assert (await ada.get("/flows/Greet")).status_code == 404
    assert (await bob.delete("/flows/Greet")).status_code == 204

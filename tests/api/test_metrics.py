"""`GET /metrics`: Prometheus text that parses, counters that move with the work, routes by
template, what waits in the store, and who may scrape."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from tests.api.flows import GREET_YAML, SLOW_YAML
from tests.api.processes import free_port, started_server
from tests.api.support import (
    TASK_MODULES,
    YAML,
    add_user,
    admin_of,
    api_settings,
    auth_settings,
    poll_run,
    register,
    serve,
)
from tests.databases import postgres_database, postgres_database_url

RETRIED_YAML = """\
flow: Retried
steps:
  - set: {id: first, values: {ok: true}}
  - fail: {id: flaky, message: nope, retry: {max_attempts: 2, delay: 0}}
"""
TOKEN = "prometheus-scrapes-with-this-token-0123456789"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_counters_move_with_runs_steps_and_attempts(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)
    await register(client, RETRIED_YAML)
    before = await scrape(client)

    greeted = await client.post("/flows/Greet/execute", json={"inputs": {"name": "Ada"}})
    failed = await client.post("/flows/Retried/execute", json={})

    assert greeted.json()["status"] == "completed"
    assert failed.json()["status"] == "failed"
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("flow_manager_runs_started_total", flow="Greet") == 1
    assert moved("flow_manager_runs_finished_total", flow="Greet", status="completed") == 1
    assert moved("flow_manager_runs_finished_total", flow="Retried", status="failed") == 1
    assert moved("flow_manager_run_duration_seconds_count", flow="Greet") == 1
    # Greet: `greet` ran, `shout` was skipped (times is 1); Retried: `first`, then `flaky`.
    assert moved("flow_manager_steps_total", task="set", status="completed") == 2
    assert moved("flow_manager_steps_total", task="set", status="skipped") == 1
    assert moved("flow_manager_steps_total", task="fail", status="failed") == 1
    assert moved("flow_manager_step_duration_seconds_count", task="fail") == 1
    assert moved("flow_manager_attempts_total", task="fail", status="failed") == 2
    assert moved("flow_manager_retries_total", task="fail") == 1
    assert value(after, "flow_manager_runs_in_flight") == 0
    assert value(after, "flow_manager_workers_alive") >= 1


async def test_a_cancelled_run_finishes_cancelled(client: httpx.AsyncClient) -> None:
    await register(client, SLOW_YAML)
    run_id = (await client.post("/flows/Slow/runs", json={})).json()["run_id"]
    await poll_run(client, run_id, until=("running",), step="nap")

    cancelled = await client.post(f"/runs/{run_id}/cancel")

    assert cancelled.json()["status"] == "cancelled"
    samples = await scrape(client)
    assert value(samples, "flow_manager_runs_finished_total", flow="Slow", status="cancelled") == 1
    assert value(samples, "flow_manager_runs_in_flight") == 0


async def test_http_requests_are_labelled_by_route_template(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)
    run = (await client.post("/flows/Greet/execute", json={"inputs": {"name": "Ada"}})).json()
    await client.get(f"/runs/{run['run_id']}")
    await client.get("/no/such/route")

    text = (await client.get("/metrics")).text
    samples = await scrape(client)

    assert run["run_id"] not in text
    route = {"method": "GET", "route": "/runs/{run_id}", "status": "200"}
    assert value(samples, "flow_manager_http_requests_total", **route) == 1
    execute = {"method": "POST", "route": "/flows/{name}/execute"}
    assert value(samples, "flow_manager_http_request_duration_seconds_count", **execute) == 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(samples, "flow_manager_http_requests_total", **unmatched) == 1


async def test_queued_runs_are_read_from_the_store(database_url: str) -> None:
    settings = api_settings(database_url, embedded_worker=False)
    async with serve(settings) as client:
        await register(client, GREET_YAML)
        for _ in range(3):
            started = await client.post("/flows/Greet/runs", json={"inputs": {"name": "Ada"}})
            assert started.status_code == 202

        samples = await scrape(client)

    assert value(samples, "flow_manager_queued_runs") == 3
    assert value(samples, "flow_manager_runs_in_flight") == 0


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that is bound but not listening: every connection to it is refused."""
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        yield reserved.getsockname()[1]


async def test_store_failures_are_counted_and_the_scrape_still_answers(
    refused_port: int,
) -> None:
    """With METRICS_TOKEN the scrape needs nothing of the store (an admin's key would be
    checked against it)."""
    settings = api_settings(
        f"postgresql+asyncpg://postgres@127.0.0.1:{refused_port}/nowhere",
        migrate_on_start=False,
        embedded_worker=False,
        metrics_token=TOKEN,
    )
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with serve(settings, raise_app_exceptions=False) as client:
        first = await scrape(client, bearer)
        await client.get("/runs/00000000-0000-0000-0000-000000000000")
        second = await scrape(client, bearer)

    assert value(second, "flow_manager_store_errors_total") > value(
        first, "flow_manager_store_errors_total"
    )
    assert ("flow_manager_queued_runs", frozenset()) not in second


def auth_on(database_url: str, **overrides: object) -> Settings:
    return auth_settings(database_url, **overrides)


async def test_an_admin_scrapes_by_default(database_url: str) -> None:
    async with serve(auth_on(database_url)) as client:
        admin = await admin_of(client)
        user = await add_user(admin, "ada")
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        not_admin = await user.get("/metrics")
        scraped = await admin.get("/metrics")

    assert anonymous.status_code == 401
    assert wrong.status_code == 401
    assert not_admin.status_code == 403
    assert scraped.status_code == 200


async def test_metrics_token_lets_a_scraper_in_without_a_user(database_url: str) -> None:
    async with serve(auth_on(database_url, metrics_token=TOKEN)) as client:
        anonymous = await client.get("/metrics")
        scraper = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert anonymous.status_code == 401
    assert scraper.status_code == 200
    assert "flow_manager_runs_in_flight" in scraper.text


async def test_metrics_public_needs_no_credential(database_url: str) -> None:
    async with serve(auth_on(database_url, metrics_public=True)) as client:
        anonymous = await client.get("/metrics")

    assert anonymous.status_code == 200


def parsed(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_several_processes_answer_for_all_of_them_in_multiprocess_mode(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    async with postgres_database("fm_metrics") as name:
        environment = {
            "DATABASE_URL": postgres_database_url(name, scheme="postgresql+asyncpg"),
            "TASK_MODULES": ",".join(TASK_MODULES),
            "PROMETHEUS_MULTIPROC_DIR": str(directory),
            "EMBEDDED_WORKER": "false",
        }
        with ExitStack() as processes:
            servers = []
            for number in range(2):
                port = free_port()
                command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
                place = tmp_path / f"server-{number}"
                place.mkdir()
                servers.append(
                    processes.enter_context(started_server(command, port, environment, place))
                )
            async with httpx.AsyncClient(timeout=30) as http:
                first, second = (server.url for server in servers)
                registered = await http.post(f"{first}/flows", content=GREET_YAML, headers=YAML)
                assert registered.status_code == 201, registered.text
                for url in (first, second, second):
                    done = await http.post(
                        f"{url}/flows/Greet/execute", json={"inputs": {"name": "Ada"}}
                    )
                    assert done.json()["status"] == "completed", done.text
                answers = [(await http.get(f"{url}/metrics")).text for url in (first, second)]

    for answer in answers:
        samples = parsed(answer)
        assert value(samples, "flow_manager_runs_started_total", flow="Greet") == 3
        assert value(samples, "flow_manager_runs_in_flight") == 0
        assert value(samples, "flow_manager_workers_alive") == 2

"""The dashboard follows a run live on PostgreSQL while another process executes it: the API
process runs no worker, a standalone worker process claims the run, and the page turns green
over the events stream, whose events reach the API process by LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

import pytest

from tests.api.sse import start_worker
from tests.databases import (
    create_postgres_database,
    drop_postgres_database,
    postgres_database_url,
    unique_database_name,
)
from tests.servers import POSTGRES_HOST, POSTGRES_PORT, require_service
from tests.ui.browser import require_browser
from tests.ui.conftest import Dashboard, dashboard_on, sign_in
from tests.ui.test_dashboard import expect_status, followed_without_reloading, start_from_the_form

with suppress(ImportError):  # when absent, `require_browser` says so (and fails under CI)
    from playwright.sync_api import Browser, Page, expect

WORKER_STOP_SECONDS = 20


def _run_aside(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run `coroutine` to its end in a thread of its own: Playwright's sync API holds an event
    loop in this one."""
    with ThreadPoolExecutor(max_workers=1) as aside:
        aside.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="module")
def postgres_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    require_browser()
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    directory = tmp_path_factory.mktemp("postgres-dashboard")
    name = unique_database_name("fm_ui_live")
    _run_aside(create_postgres_database(name))
    try:
        url = postgres_database_url(name, scheme="postgresql+asyncpg")
        with dashboard_on(url, directory, {"EMBEDDED_WORKER": "false"}) as served:
            worker = start_worker(url, directory)  # the store is migrated: the server did it
            try:
                yield served
            finally:
                worker.terminate()
                worker.wait(timeout=WORKER_STOP_SECONDS)
    finally:
        _run_aside(drop_postgres_database(name))


@pytest.fixture
def postgres_page(browser: Browser, postgres_dashboard: Dashboard) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, postgres_dashboard)
    yield page
    context.close()
    assert not errors, f"the page's scripts failed: {errors}"


def test_a_run_on_another_worker_process_turns_green_live(
    postgres_page: Page, postgres_dashboard: Dashboard
) -> None:
    page, dashboard = postgres_page, postgres_dashboard
    run_id = start_from_the_form(
        page, dashboard, "Gate", directory=str(dashboard.directory), marker="pg"
    )
    expect_status(page, "running", "#run-graph [data-step='wait']")  # the worker claimed it
    expect(page.locator("#live-mode")).to_have_text("Live: following the run's events.")

    (dashboard.directory / "pg").touch()

    expect_status(page, "completed")
    expect_status(page, "completed", "#run-graph [data-step='after']")
    expect(page.locator("#live-mode")).to_have_text("The run has finished.")
    assert followed_without_reloading(page)
    with dashboard.api() as http:
        assert http.get(f"/runs/{run_id}").json()["status"] == "completed"

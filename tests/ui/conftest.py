"""A real server process (SQLite, authentication on, one user with a password and flows of
her own) and Debian's chromium, both started once for the module; a fresh, signed-in browser
page for each test. `dashboard_on` serves the same on another store, with other settings."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.api.processes import Server, free_port, started_server
from tests.api.support import ADMIN_KEY, TASK_MODULES
from tests.ui.browser import CHROMIUM, require_browser
from tests.ui.flows import APPROVAL, GATE, GREET_V1, GREET_V2, RESUMABLE

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

USER = "ada"
PASSWORD = "correct horse battery"
# Pages are photographed into this directory: the test's own by default, docs/screenshots
# when scripts/screenshots asks for them to be refreshed.
SCREENSHOTS_SETTING = "UI_SCREENSHOTS"
ANSWER_VALUE_BYTES = 1024


@dataclass(frozen=True)
class Dashboard:
    server: Server
    key: str  # the user's API key, for the test's own calls
    directory: Path  # where the tasks of tests/api/tasks.py keep their markers

    @property
    def url(self) -> str:
        return f"{self.server.url}/ui/"

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )


def _user_with_flows(server: Server) -> str:
    """Creates the user (by the admin key), gives her a key, and registers her flows."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        deadline = time.monotonic() + 20
        while http.get("/me", headers=admin).status_code != 200:  # installed in the background
            assert time.monotonic() < deadline, "ADMIN_API_KEY was never installed"
        created = http.post("/users", json={"username": USER, "password": PASSWORD}, headers=admin)
        assert created.status_code == 201, created.text
        key = http.post("/keys", json={"user": USER, "name": "ui tests"}, headers=admin)
        assert key.status_code == 201, key.text
        mine = {"Authorization": f"Bearer {key.json()['key']}", "Content-Type": "application/yaml"}
        for source in (GREET_V1, GREET_V2, GATE, RESUMABLE, APPROVAL):
            registered = http.post("/flows", content=source, headers=mine)
            assert registered.status_code == 201, registered.text
        secret: str = key.json()["key"]
        return secret


@contextmanager
def dashboard_on(
    database_url: str, directory: Path, settings: Mapping[str, str] | None = None
) -> Iterator[Dashboard]:
    """The server on the store at `database_url`, with the user and her flows."""
    port = free_port()
    environment = {
        "DATABASE_URL": database_url,
        "TASK_MODULES": ",".join(TASK_MODULES),
        "AUTH": "on",
        "ADMIN_API_KEY": ADMIN_KEY,
        "LOG_LEVEL": "warning",
        # Small, so that a test can show a value too large for the run's answer.
        "MAX_ANSWER_VALUE_BYTES": str(ANSWER_VALUE_BYTES),
        **(settings or {}),
    }
    command = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with started_server(command, port, environment, directory) as server:
        yield Dashboard(server, _user_with_flows(server), directory)
        server.stop()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    require_browser()
    directory = tmp_path_factory.mktemp("dashboard")
    with dashboard_on(f"sqlite+aiosqlite:///{directory / 'store.db'}", directory) as served:
        yield served


@pytest.fixture(scope="module")
def browser(dashboard: Dashboard) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get(SCREENSHOTS_SETTING) or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def anonymous_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"the page's scripts failed: {errors}"


@pytest.fixture
def page(anonymous_page: Page, dashboard: Dashboard) -> Page:
    """Signed in as the user, through the dashboard's own form."""
    sign_in(anonymous_page, dashboard)
    return anonymous_page


def sign_in(page: Page, dashboard: Dashboard, password: str = PASSWORD) -> None:
    page.goto(dashboard.url)
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {USER}").wait_for()

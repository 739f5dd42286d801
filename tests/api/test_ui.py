"""`/ui`: the dashboard's page and assets are served by the app, to anyone (they hold no data),
with a content policy that lets the page load only this site's files; nothing else is served
from the package. The browser tests (tests/ui) check what the page does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.ui import STATIC_DIRECTORY
from tests.api.support import auth_settings, serve
from tests.databases import fresh_store_database


@pytest.fixture
async def anonymous(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client without a credential, of a service with authentication on."""
    async with (
        fresh_store_database("sqlite", tmp_path) as url,
        serve(auth_settings(url)) as client,
    ):
        yield client


async def test_the_page_is_served_to_anyone_with_a_strict_content_policy(
    anonymous: httpx.AsyncClient,
) -> None:
    page = await anonymous.get("/ui/")
    refused = await anonymous.get("/runs")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="assets/main.js">' in page.text
    assert refused.status_code == 401  # the data stays behind the caller's credential


async def test_ui_without_the_slash_leads_to_the_page(anonymous: httpx.AsyncClient) -> None:
    answer = await anonymous.get("/ui")

    assert answer.status_code in {307, 308}
    assert answer.headers["location"].endswith("/ui/")


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("main.js", "text/javascript"), ("app.css", "text/css"), ("icon.svg", "image/svg+xml")],
)
async def test_assets_are_served_with_their_media_type(
    anonymous: httpx.AsyncClient, name: str, media_type: str
) -> None:
    answer = await anonymous.get(f"/ui/assets/{name}")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(media_type)
    assert answer.content == (STATIC_DIRECTORY / name).read_bytes()


async def test_every_module_the_page_imports_is_served(anonymous: httpx.AsyncClient) -> None:
    for module in sorted(STATIC_DIRECTORY.glob("*.js")):
        answer = await anonymous.get(f"/ui/assets/{module.name}")
        assert answer.status_code == 200, module.name


@pytest.mark.parametrize(
    "path",
    [
        "/ui/assets/missing.js",
        "/ui/assets/index.html",
        "/ui/assets/..%2F__init__.py",
        "/ui/assets/%2E%2E%2Fstatic%2Fmain.js",
        "/ui/assets/__init__.py",
        "/ui/assets/Main.JS",
    ],
)
async def test_nothing_else_is_served(anonymous: httpx.AsyncClient, path: str) -> None:
    answer = await anonymous.get(path)

    assert answer.status_code in {404, 422}, answer.text
    assert "STATIC_DIRECTORY" not in answer.text

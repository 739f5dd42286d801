"""Debian's chromium, driven by Playwright for Python (never Playwright's own browser build,
which cannot be downloaded here). Absent, the browser tests skip with a reason, and fail
under CI, which installs both (.ci/run, requirements-dev.txt)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium"))


def require_browser() -> None:
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (requirements-dev.txt)")
    if not CHROMIUM.exists():
        missing.append(f"chromium at {CHROMIUM} (apt-get install -y chromium)")
    if missing:
        reason = f"the browser tests need {' and '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI requires them", pytrace=False)
        pytest.skip(reason)

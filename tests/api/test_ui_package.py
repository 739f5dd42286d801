"""The dashboard ships inside the package: a wheel holds every file of app/ui/static, so an
installed service serves /ui with no checkout of the repository beside it."""

from __future__ import annotations

import zipfile
from pathlib import Path

from app.ui import STATIC_DIRECTORY
from tests.store.test_packaged_migrations import wheel

__all__ = ["wheel"]  # the fixture, built once for this module too


def test_the_wheel_holds_every_file_of_the_dashboard(wheel: Path) -> None:
    shipped = {f"app/ui/static/{path.name}" for path in STATIC_DIRECTORY.iterdir()}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

    assert {"app/ui/static/index.html", "app/ui/static/main.js"} <= shipped
    assert shipped <= names

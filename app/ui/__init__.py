"""The dashboard (DESIGN.md section 8): static HTML, CSS and JavaScript modules, no build step.

The files under `static/` hold no data: every page asks the HTTP API for what it shows, with
the session cookie of `/auth/login`. `app/api/routes/ui.py` serves them at `/ui`.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIRECTORY = Path(__file__).with_name("static")
INDEX = STATIC_DIRECTORY / "index.html"

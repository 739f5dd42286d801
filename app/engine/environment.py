"""The environment a flow's `${env...}` sees in library and CLI use.

The process environment, over the values of a `.env` file (the tutorial keeps DATABASE_URL and
REDIS_URL there). The service narrows this to `FLOW_ENV_ALLOWLIST`.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values


def default_environment(directory: Path | None = None) -> dict[str, str]:
    """`os.environ` over `<directory>/.env` (the working directory by default)."""
    dotenv = (directory or Path.cwd()) / ".env"
    values = dotenv_values(dotenv) if dotenv.is_file() else {}
    return {**{key: value for key, value in values.items() if value is not None}, **os.environ}

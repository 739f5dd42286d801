"""The environment a flow's `${env...}` sees in library and CLI use.

The process environment, over the values of a `.env` file (the tutorial keeps DATABASE_URL and
REDIS_URL there). The service narrows this to `FLOW_ENV_ALLOWLIST`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from dotenv import dotenv_values


def default_environment(directory: Path | None = None) -> dict[str, str]:
    """`os.environ` over `<directory>/.env` (the working directory by default)."""
    dotenv = (directory or Path.cwd()) / ".env"
    values = dotenv_values(dotenv) if dotenv.is_file() else {}
    return {**{key: value for key, value in values.items() if value is not None}, **os.environ}


def allowed_environment(
    allowlist: Iterable[str], env_file: Path | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What flows see in the service: only allow-listed variables.

    Values come from the process environment, overridden by `env_file` when given (so a flow's
    `${env.DATABASE_URL}` can differ from the service's own DATABASE_URL).
    """
    values = dict(os.environ if base is None else base)
    if env_file is not None:
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    allowed = set(allowlist)
    return {name: value for name, value in values.items() if name in allowed}

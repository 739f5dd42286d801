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
    allowlist: Iterable[str],
    env_file: Path | None = None,
    base: Mapping[str, str] | None = None,
    *,
    file_overrides: bool = True,
) -> dict[str, str]:
    """What flows see in the service: only allow-listed variables.

    Values come from the process environment and `env_file` when given. The file wins by
    default, so that a flow's `${env.DATABASE_URL}` can differ from the service's own
    DATABASE_URL; with `file_overrides=False` the environment wins, as in `default_environment`
    (a scaffolded api.py, whose store is not named by DATABASE_URL).
    """
    process = dict(os.environ if base is None else base)
    from_file: dict[str, str] = {}
    if env_file is not None:
        from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    values = {**process, **from_file} if file_overrides else {**from_file, **process}
    allowed = set(allowlist)
    return {name: value for name, value in values.items() if name in allowed}

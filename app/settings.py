"""The service's settings, read from the environment and a `.env` file (pydantic-settings).

Built once by `get_settings()`, never at import. Every setting is documented in `.env.example`.
List settings (`TASK_MODULES`, `FLOW_ENV_ALLOWLIST`) are comma-separated.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./flows.db"
# Pool options the storage guide lets a DATABASE_URL carry in its query string.
POOL_OPTIONS = ("pool_size", "max_overflow", "pool_timeout", "pool_recycle")
CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # The store. Unset: built from POSTGRES_* when POSTGRES_HOST is set, else SQLite.
    database_url: str = ""
    postgres_host: str | None = None
    postgres_port: int = 5432
    postgres_db: str = "flow_db"
    postgres_user: str = "postgres"
    postgres_password: str = ""
    pool_size: int = Field(20, ge=1)
    max_overflow: int = Field(10, ge=0)
    pool_timeout: float = Field(30, gt=0)
    pool_recycle: int = Field(3600, ge=-1)
    # Apply migrations at start-up; unset means "yes on SQLite only" (the zero-set-up dev store).
    migrate_on_start: bool | None = None

    # Flows.
    task_modules: CommaList = []
    flow_files: CommaList = []  # definitions registered at start-up (a new version if changed)
    flow_env_allowlist: CommaList = []
    flow_env_file: Path | None = None  # extra values for flows' `${env...}`, e.g. the tutorial's

    # Work and limits.
    embedded_worker: bool = True
    worker_concurrency: int = Field(10, ge=1)
    poll_interval: float = Field(1.0, gt=0)
    lease_seconds: float = Field(30, gt=0)
    # On SIGTERM, runs in flight get this long to finish; the others are released to other
    # workers.
    shutdown_grace_seconds: float = Field(30, ge=0)
    execute_wait_seconds: float = Field(30, ge=0)
    max_wait_seconds: float = Field(300, ge=0)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)

    # Limits of the flow language (definitions and what their expressions build).
    max_steps: int = Field(5000, ge=1)  # steps per definition, handlers included

    # Serving.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: str = "info"

    @field_validator("task_modules", "flow_files", "flow_env_allowlist", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _resolve_database_url(self) -> Settings:
        if not self.database_url:
            self.database_url = self._postgres_url() or DEFAULT_DATABASE_URL
        url, options = split_pool_options(self.database_url)
        self.database_url = url
        for name, value in options.items():
            setattr(self, name, type(getattr(self, name))(value))
        return self

    def _postgres_url(self) -> str | None:
        if not self.postgres_host:
            return None
        credentials = quote(self.postgres_user, safe="")
        if self.postgres_password:
            credentials += ":" + quote(self.postgres_password, safe="")
        return (
            f"postgresql+asyncpg://{credentials}@{self.postgres_host}:{self.postgres_port}"
            f"/{self.postgres_db}"
        )

    @property
    def heartbeat_seconds(self) -> float:
        """How often a worker says it is alive: a third of a lease, at most every 10 s."""
        return min(10.0, self.lease_seconds / 3)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_migrate_on_start(self) -> bool:
        return self.is_sqlite if self.migrate_on_start is None else self.migrate_on_start


def split_pool_options(url: str) -> tuple[str, dict[str, str]]:
    """`...?pool_size=20&charset=utf8mb4` -> (`...?charset=utf8mb4`, {"pool_size": "20"})."""
    base, separator, query = url.partition("?")
    if not separator:
        return url, {}
    pairs = parse_qsl(query, keep_blank_values=True)
    options = {key: value for key, value in pairs if key in POOL_OPTIONS}
    rest = urlencode([(key, value) for key, value in pairs if key not in POOL_OPTIONS])
    return (f"{base}?{rest}" if rest else base), options


@lru_cache
def get_settings() -> Settings:
    return Settings()

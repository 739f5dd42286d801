"""The service's settings, read from the environment and a `.env` file (pydantic-settings).

Built once by `get_settings()`, never at import. Every setting is documented in `.env.example`.
List settings (`TASK_MODULES`, `FLOW_ENV_ALLOWLIST`) are comma-separated.
"""

from __future__ import annotations

import functools
import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, quote, urlencode

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.connections.destinations import AllowEntry
from app.domain.retention import MAX_RETENTION_DAYS

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./flows.db"
# Pool options the storage guide lets a DATABASE_URL carry in its query string.
POOL_OPTIONS = ("pool_size", "max_overflow", "pool_timeout", "pool_recycle")
CommaList = Annotated[list[str], NoDecode]
# The HTTP edge.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
MIN_SECRET_KEY_LENGTH = 32


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
    flow_env_file_overrides: bool = True  # false: the process environment wins over the file

    # Work and limits.
    embedded_worker: bool = True
    worker_concurrency: int = Field(10, ge=1)
    poll_interval: float = Field(1.0, gt=0)
    # The pause of a worker after a claim that drained the queue: runs queued meanwhile are
    # claimed together (app/worker/claim_loop.py).
    claim_interval: float = Field(0.03, ge=0, le=1)
    lease_seconds: float = Field(30, gt=0)
    # On SIGTERM, runs in flight get this long to finish; the others are released to other
    # workers.
    shutdown_grace_seconds: float = Field(30, ge=0)
    execute_wait_seconds: float = Field(30, ge=0)
    max_wait_seconds: float = Field(300, ge=0)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)

    # Retention (DESIGN.md section 9): finished runs older than this many days are deleted,
    # unless their flow's `retention: {days}` says otherwise; unset: kept forever. One process
    # at a time prunes, every RETENTION_INTERVAL_SECONDS, RETENTION_BATCH runs per transaction.
    run_retention_days: int | None = Field(None, ge=1, le=MAX_RETENTION_DAYS)
    retention_interval_seconds: float = Field(300, gt=0, allow_inf_nan=False)
    retention_batch: int = Field(500, ge=1, le=10_000)

    # Schedules (DESIGN.md section 9): each process's scheduler looks for due ticks at least
    # every SCHEDULE_POLL_SECONDS (sooner when the next tick is sooner), SCHEDULE_BATCH due
    # schedules per transaction. A flow has at most MAX_SCHEDULES_PER_FLOW schedules (made by
    # the API and declared together), none firing more often than every
    # MIN_SCHEDULE_INTERVAL_SECONDS.
    schedule_poll_seconds: float = Field(1.0, gt=0, le=60, allow_inf_nan=False)
    schedule_batch: int = Field(100, ge=1, le=10_000)
    max_schedules_per_flow: int = Field(20, ge=1, le=10_000)
    min_schedule_interval_seconds: float = Field(1, ge=1, allow_inf_nan=False)

    # What flows may reach, and their connection pools (app/connections).
    connection_allowlist: CommaList = []  # host, host:port, *.domain or CIDR; empty: see docs
    connection_allow_store: bool = False  # may flows' postgres connections reach the store?
    ca_bundle_dir: Path | None = None  # the only directory `verify:` CA bundle paths may name
    connection_connect_timeout: float = Field(10, gt=0)  # default, per connection attempt
    connection_command_timeout: float = Field(300, gt=0)  # default, per statement or reply
    connection_idle_seconds: float = Field(300, gt=0)  # an unused pool is closed after this
    connection_max_pool_size: int = Field(100, ge=1)  # largest pool_size/max_connections
    connection_max_total: int = Field(500, ge=1)  # outbound connections of all pools

    @field_validator("connection_allowlist", mode="before")
    @classmethod
    def _split_allowlist(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        for entry in value if isinstance(value, list) else ():
            AllowEntry.parse(str(entry))  # a ValueError naming the entry
        return value

    # What runs keep and what answers carry (sizes: bytes of compact UTF-8 JSON).
    max_step_output_bytes: int = Field(1024 * 1024, ge=1024)  # one task's outputs
    max_run_document_bytes: int = Field(16 * 1024 * 1024, ge=1024)  # all a run stores
    max_fan_out: int = Field(10_000, ge=1)  # elements of one for_each
    # A for_each of at least this many elements is handed to every worker (claimable by any);
    # smaller ones run in their run's process, which is cheaper for them.
    shared_fan_out_min: int = Field(100, ge=1)
    # Elements of shared fan-outs a worker claims in one transaction (and runs at once, at
    # most, besides its runs).
    element_batch: int = Field(100, ge=1, le=10_000)
    max_answer_value_bytes: int = Field(1024 * 1024, ge=1024)  # one value in an answer
    max_answer_bytes: int = Field(4 * 1024 * 1024, ge=1024)  # all values of one answer

    # Limits of the flow language (definitions and what their expressions build).
    max_steps: int = Field(5000, ge=1)  # steps per definition, handlers included

    # Durations a definition controls, in seconds: a step's `timeout` (a larger one is refused
    # at validation, and a step without one runs at most this long) and a retry's `delay` and
    # `max_delay`.
    max_step_timeout_seconds: float = Field(86_400, gt=0, allow_inf_nan=False)
    max_retry_delay_seconds: float = Field(86_400, ge=0, allow_inf_nan=False)
    # How long a durable wait may last: a `sleep` (its `seconds`, or to its `until`) or a
    # `wait_for`'s `timeout`. A waiting run holds no worker: the default is a year.
    max_durable_wait_seconds: float = Field(366 * 86_400, gt=0, allow_inf_nan=False)
    # Signals sent to one run (POST /runs/{id}/signals/{name}), and the bytes of one payload.
    max_signals_per_run: int = Field(1000, ge=1)
    max_signal_payload_bytes: int = Field(256 * 1024, ge=1)
    # How deep child runs (`- flow: Name` steps) may nest below their first parent: a flow may
    # call itself, up to this depth.
    max_subflow_depth: int = Field(10, ge=1, le=1000)
    # Runs one `POST /flows/{name}/runs` may start at once (`{"runs": [...]}`), in one transaction.
    max_batch_runs: int = Field(1000, ge=1, le=10_000)

    # Serving.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: str = "info"

    # Seeing runs (DESIGN.md section 8). `/metrics` needs an admin unless METRICS_PUBLIC, or
    # the bearer token METRICS_TOKEN (for a Prometheus server; no user needed).
    metrics_public: bool = False
    metrics_token: SecretStr | None = Field(None, min_length=32)
    # `python -m app worker` has no API: it serves its own /metrics on HOST:WORKER_METRICS_PORT.
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
    # `json`: every line the process writes is one JSON object (uvicorn's included).
    log_format: Literal["text", "json"] = "text"
    # What a task logs (`context.logger`) is kept with each attempt, up to this many bytes.
    max_task_log_bytes: int = Field(64 * 1024, ge=1024)
    # Traces (the `otel` extra): spans are sent to this OTLP/HTTP endpoint when it is set.
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "flow-manager"

    # Trust (DESIGN.md section 7). `auto`: on unless the server listens only on loopback.
    auth: Literal["auto", "on", "off"] = "auto"
    allow_insecure: bool = False  # lets AUTH=off serve a non-loopback address
    # Creates (once) the admin `admin` with this value as an API key, for containers.
    admin_api_key: SecretStr | None = Field(None, min_length=32)
    session_seconds: float = Field(12 * 3600, gt=0)  # a dashboard sign-in lasts this long
    # How long a process may trust what it cached of a credential or a flow's shares. Changes
    # reach every process at once by notification (PostgreSQL) or because there is only one
    # (SQLite); this bounds the damage of a notification lost while a listener reconnects.
    auth_cache_seconds: float = Field(60, ge=0)
    key_usage_flush_seconds: float = Field(30, gt=0)  # `last_used_at` is written this often
    # Limits per caller.
    runs_per_minute: int = Field(3000, ge=0)  # runs one key may start per minute; 0: no limit
    max_flows_per_user: int = Field(1000, ge=1)
    max_versions_per_user: int = Field(10_000, ge=1)
    max_keys_per_user: int = Field(100, ge=1)  # keys not revoked
    sign_in_attempts: int = Field(10, ge=1)  # failed sign-ins per user per 15 minutes

    # Live run events (GET /runs/{id}/events).
    events_buffer: int = Field(1000, ge=1)  # events a stream may fall behind before it is cut
    events_keepalive_seconds: float = Field(15, gt=0, le=15)  # a comment at least this often
    events_streams_per_caller: int = Field(20, ge=1)  # open streams of one caller, per process
    # How often a watched run's events are read without a notification: MariaDB's only way
    # to see other processes' events; elsewhere the safety net of a lost notification.
    events_poll_seconds: float = Field(1.0, gt=0)

    # The HTTP edge: which Host names are answered, how long an idle connection is kept, how
    # large a request's head may be, the key that signs what the API hands out (run-list
    # cursors).
    # Empty: the loopback names when HOST is a loopback address, else any host ("*").
    allowed_hosts: CommaList = []
    # Longer than the idle timeout of any client or load balancer in front, so that they
    # close idle connections first (a server closing one races the client's reuse of it).
    keep_alive_seconds: int = Field(75, ge=1, le=3600)
    # A request's line and headers (431 past it; python -m app serve).
    max_header_bytes: int = Field(64 * 1024, ge=8 * 1024, le=16 * 1024 * 1024)
    # Empty: a random key per process (cursors then only work on the process that made them).
    secret_key: SecretStr = SecretStr("")

    @field_validator(
        "task_modules", "flow_files", "flow_env_allowlist", "allowed_hosts", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_patterns(cls, value: list[str]) -> list[str]:
        return [host_pattern(item) for item in value]

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if 0 < len(value.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                f"SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters (e.g. the "
                "output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
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

    @model_validator(mode="after")
    def _refuse_open_doors(self) -> Settings:
        if self.auth == "off" and not self.listens_on_loopback and not self.allow_insecure:
            raise ValueError(
                f"AUTH=off while listening on {self.host}, which is not a loopback address, "
                "would let anyone who reaches the port act as an administrator: set AUTH=on "
                "(or auto), or ALLOW_INSECURE=true to accept that"
            )
        return self

    @property
    def auth_enabled(self) -> bool:
        """Whether callers must authenticate: `auto` means yes unless only loopback listens."""
        if self.auth == "auto":
            return not self.listens_on_loopback
        return self.auth == "on"

    def refuses_private_networks(self, *, serving: bool) -> bool:
        """Whether flows are kept off loopback, link-local and private addresses (unless
        CONNECTION_ALLOWLIST lists them): wherever callers must authenticate. A standalone
        worker (`serving=False`) cannot tell who reaches the API it works for, so it refuses
        them unless AUTH=off says so."""
        return self.auth_enabled if serving else self.auth != "off"

    @property
    def listens_on_loopback(self) -> bool:
        """Whether the service listens on a loopback address only (HOST, which
        `python -m app serve --host` sets), so that only this machine can reach it."""
        return is_loopback(self.host)

    @property
    def trusted_hosts(self) -> list[str]:
        """The Host names answered: ALLOWED_HOSTS, else the loopback names when listening on
        loopback (a web page that rebinds its own name to 127.0.0.1 is refused), else any."""
        if self.allowed_hosts:
            return self.allowed_hosts
        if self.listens_on_loopback:
            return list(dict.fromkeys([*LOOPBACK_NAMES, host_pattern(self.host)]))
        return ["*"]

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


@functools.lru_cache(maxsize=256)  # asked of every request's local address
def is_loopback(host: str) -> bool:
    """`localhost`, `127.0.0.1`, `127.1.2.3`, `::1`, `[::1]`: yes; `0.0.0.0`, names: no."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_pattern(item: str) -> str:
    """One ALLOWED_HOSTS entry as the Host check compares it: lower case, an IPv6 address in
    brackets; `*`, `name` or `*.domain`, without a port."""
    pattern = item.strip().lower()
    try:
        if ipaddress.ip_address(pattern.strip("[]")).version == 6:
            return f"[{pattern.strip('[]')}]"
    except ValueError:
        pass
    wildcard = "*" in pattern
    if wildcard and pattern != "*" and not (pattern.startswith("*.") and "*" not in pattern[1:]):
        raise ValueError(f"ALLOWED_HOSTS: {item!r}: a wildcard is `*` alone or `*.domain`")
    if ":" in pattern or "/" in pattern or not pattern:
        raise ValueError(f"ALLOWED_HOSTS: {item!r}: a host name or address, without a port")
    return pattern


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Settings: where the store is, comma lists, pool options, migrate-on-start defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.settings import DEFAULT_DATABASE_URL, Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "POSTGRES_HOST", "POSTGRES_PASSWORD", "TASK_MODULES"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HOST", "ALLOWED_HOSTS", "KEEP_ALIVE_SECONDS", "SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_sqlite_is_the_default_store_and_migrates_at_start() -> None:
    defaults = settings()

    assert defaults.database_url == DEFAULT_DATABASE_URL
    assert defaults.should_migrate_on_start


def test_postgres_parts_build_the_url_when_database_url_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("POSTGRES_PASSWORD", "p@ss:word")

    built = settings()

    assert built.database_url == (
        "postgresql+asyncpg://postgres:p%40ss%3Aword@db.internal:5432/flow_db"
    )
    assert not built.should_migrate_on_start


def test_database_url_wins_over_postgres_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("DATABASE_URL", "mysql+aiomysql://root@localhost/flows")

    assert settings().database_url == "mysql+aiomysql://root@localhost/flows"


def test_pool_options_ride_in_the_url_query() -> None:
    chosen = settings(
        database_url="postgresql+asyncpg://u@h/db?pool_size=20&ssl=require&max_overflow=3"
    )

    assert chosen.database_url == "postgresql+asyncpg://u@h/db?ssl=require"
    assert (chosen.pool_size, chosen.max_overflow) == (20, 3)


def test_sqlite_absolute_paths_survive() -> None:
    assert settings(database_url="sqlite+aiosqlite:////var/lib/flows.db").database_url == (
        "sqlite+aiosqlite:////var/lib/flows.db"
    )


def test_lists_are_comma_separated_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_MODULES", " tasks.a , ./b.py,,")

    assert settings().task_modules == ["tasks.a", "./b.py"]


def test_invalid_values_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        settings(max_body_bytes=0)


@pytest.mark.parametrize(
    ("host", "auth", "enabled"),
    [
        ("127.0.0.1", "auto", False),
        ("localhost", "auto", False),
        ("::1", "auto", False),
        ("[::1]", "auto", False),
        ("127.0.0.2", "auto", False),
        ("0.0.0.0", "auto", True),
        ("::", "auto", True),
        ("10.0.0.5", "auto", True),
        ("api.example.org", "auto", True),
        ("127.0.0.1", "on", True),
        ("127.0.0.1", "off", False),
    ],
)
def test_authentication_is_on_unless_only_loopback_listens(
    host: str, auth: str, enabled: bool
) -> None:
    assert settings(host=host, auth=auth).auth_enabled is enabled


def test_authentication_off_on_a_public_address_is_refused_unless_insecurity_is_accepted() -> None:
    with pytest.raises(ValueError, match="ALLOW_INSECURE"):
        settings(host="0.0.0.0", auth="off")

    accepted = settings(host="0.0.0.0", auth="off", allow_insecure=True)

    assert accepted.auth_enabled is False


def test_an_admin_api_key_too_short_to_be_safe_is_refused() -> None:
    with pytest.raises(ValueError, match="admin_api_key"):
        settings(admin_api_key="short")


def test_every_setting_is_documented_in_the_example_file() -> None:
    example = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))

    missing = {name.upper() for name in Settings.model_fields} - documented

    assert not missing, f"settings missing from .env.example: {sorted(missing)}"


# The HTTP edge.


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_listening_on_loopback_answers_the_loopback_names(host: str) -> None:
    chosen = settings(host=host)

    assert chosen.listens_on_loopback
    assert {"localhost", "127.0.0.1", "[::1]"} <= set(chosen.trusted_hosts)
    assert "*" not in chosen.trusted_hosts


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "flows.internal"])
def test_listening_beyond_loopback_answers_any_host(host: str) -> None:
    chosen = settings(host=host)

    assert not chosen.listens_on_loopback
    assert chosen.trusted_hosts == ["*"]


def test_allowed_hosts_win_and_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", " Flows.Example.com, *.corp.example ,::1,")

    chosen = settings(host="0.0.0.0")

    assert chosen.trusted_hosts == ["flows.example.com", "*.corp.example", "[::1]"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("flows.example.com:443", "without a port"),
        ("https://flows.example.com", "without a port"),
        ("a*.example.com", "wildcard"),
        ("*example.com", "wildcard"),
        ("*.*.example.com", "wildcard"),
    ],
)
def test_allowed_hosts_that_could_never_match_are_refused_at_start(
    entry: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        settings(allowed_hosts=entry)


def test_a_short_secret_key_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        settings(secret_key="changeme")
    assert settings(secret_key="x" * 32).secret_key.get_secret_value() == "x" * 32
    assert "x" * 32 not in repr(settings(secret_key="x" * 32))


def test_idle_connections_are_kept_longer_than_clients_keep_them() -> None:
    """httpx keeps an idle connection 5 s, aiohttp 15 s, load balancers commonly 60 s."""
    assert settings().keep_alive_seconds > 60


def test_max_steps_comes_from_the_environment_and_is_at_least_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings().max_steps == 5000
    monkeypatch.setenv("MAX_STEPS", "12")
    assert settings().max_steps == 12
    with pytest.raises(ValueError, match="max_steps"):
        settings(max_steps=0)


@pytest.mark.parametrize(
    ("auth", "host", "serving", "refused"),
    [
        ("auto", "127.0.0.1", True, False),  # the tutorial: flows reach the local databases
        ("auto", "0.0.0.0", True, True),
        ("on", "127.0.0.1", True, True),
        ("auto", "127.0.0.1", False, True),  # a worker cannot tell who reaches the API
        ("on", "127.0.0.1", False, True),
        ("off", "127.0.0.1", False, False),
    ],
)
def test_private_networks_are_refused_to_flows_wherever_callers_must_authenticate(
    auth: str, host: str, serving: bool, refused: bool
) -> None:
    assert settings(auth=auth, host=host).refuses_private_networks(serving=serving) is refused


def test_the_durations_a_definition_controls_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings().max_step_timeout_seconds == settings().max_retry_delay_seconds == 86_400
    monkeypatch.setenv("MAX_STEP_TIMEOUT_SECONDS", "3600")
    monkeypatch.setenv("MAX_RETRY_DELAY_SECONDS", "0")
    assert settings().max_step_timeout_seconds == 3600
    assert settings().max_retry_delay_seconds == 0  # retries without waiting, only
    for refused in ("0", "-1", "inf", "nan"):
        monkeypatch.setenv("MAX_STEP_TIMEOUT_SECONDS", refused)
        with pytest.raises(ValueError, match="max_step_timeout_seconds"):
            settings()

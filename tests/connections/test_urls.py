"""Passwords are hidden from the connection URLs shown in messages; everything else stays."""

from __future__ import annotations

import pytest

from app.connections.urls import connection_failed, redact_password, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://postgres:secret@localhost:5432/users_db",
            "postgresql://postgres:***@localhost:5432/users_db",
        ),
        ("redis://:secret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql+asyncpg://u:p%40ss@h/db?ssl=true", "postgresql+asyncpg://u:***@h/db?ssl=true"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:secret@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db"),
        ("postgresql://u:secret@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
        ("postgresql://u@h/db?password=secret&ssl=1", "postgresql://u@h/db?password=***&ssl=1"),
        ("u:secret@h:5432", "u:***@h:5432"),
    ],
)
def test_the_password_is_masked_and_the_rest_kept(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@localhost:5432/users_db",
        "redis://localhost:6379/0",
        "postgresql://h:5432/db?application_name=a@b",
        "postgresql://[::1]/db",
        "unix:///var/run/redis.sock?db=2",
        "not a url at all",
        "postgres://[::1:5432/db",
        "",
    ],
)
def test_text_without_a_password_is_unchanged(url: str) -> None:
    assert redact_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:pa/ss@host/db",  # unescaped `/` ends the authority early
        "postgresql://u:12/ss@host/db",
        "postgresql://u:pa?ss@host/db",
        "postgresql://u:pa#ss@host/db",
    ],
)
def test_a_malformed_password_is_hidden_entirely(url: str) -> None:
    shown = redact_url(url)

    assert "pa" not in shown.split("@")[0].removeprefix("postgresql://u")
    assert "ss" not in shown
    assert shown.endswith("@host/db")


def test_redact_password_hides_the_url_and_its_password_in_any_text() -> None:
    url = "postgresql://app:p%40ss-w0rd@db/users"
    text = f"could not reach {url}; auth p@ss-w0rd and p%40ss-w0rd refused"

    assert redact_password(text, url) == (
        "could not reach postgresql://app:***@db/users; auth *** and *** refused"
    )


def test_connection_failed_names_connection_url_and_cause() -> None:
    url = "redis://:hunter22@cache:6379/0"
    error = connection_failed("cache", url, OSError("hunter22 was refused"))

    assert str(error) == (
        "connection 'cache' to redis://:***@cache:6379/0 failed: OSError: *** was refused"
    )

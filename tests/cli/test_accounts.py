"""`python -m app users ...` and `keys ...`: accounts made from the server's machine, whose keys
the API then accepts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.cli import main
from app.settings import get_settings
from tests.api.support import api_settings, serve


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'flows.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def printed_key(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.strip()


async def cli(*arguments: str) -> int:
    """The command, as a user types it: in a thread, as it runs an event loop of its own."""
    return await asyncio.to_thread(main, list(arguments))


async def test_a_user_made_on_the_command_line_calls_the_api_with_the_printed_key(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("users", "create", "ada", "--email", "ada@example.org") == 0
    key = printed_key(capsys)

    async with serve(api_settings(store, auth="on")) as client:
        me = await client.get("/me", headers={"Authorization": f"Bearer {key}"})
        anonymous = await client.get("/me")

    assert me.json()["username"] == "ada"
    assert anonymous.status_code == 401


async def test_keys_are_made_with_scopes_listed_and_revoked(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await cli("users", "create", "ada", "--no-key")
    assert capsys.readouterr().out == ""
    assert await cli("keys", "create", "ada", "--scope", "runs:read", "--name", "ci") == 0
    key = printed_key(capsys)
    assert await cli("keys", "list", "ada") == 0
    listing = capsys.readouterr().out
    key_id = listing.split("\t", 1)[0]

    assert "runs:read" in listing
    assert "\tci\t" in listing
    assert key not in listing
    assert await cli("keys", "revoke", key_id) == 0
    async with serve(api_settings(store, auth="on")) as client:
        refused = await client.get("/me", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401


def test_an_admin_is_made_with_admin_and_a_password_read_from_stdin(
    store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))

    assert main(["users", "create", "root", "--admin", "--password-stdin", "--no-key"]) == 0
    assert main(["users", "list"]) == 0

    assert "root\tadmin" in capsys.readouterr().out


def test_a_taken_name_exits_1_with_the_reason(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["users", "create", "ada"])
    capsys.readouterr()

    assert main(["users", "create", "ada"]) == 1
    assert "taken" in capsys.readouterr().err


def test_a_key_for_an_unknown_user_exits_1(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "nobody"]) == 1
    assert "nobody" in capsys.readouterr().err


async def test_keys_made_on_the_command_line_are_audited(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await cli("users", "create", "root", "--admin")
    key = printed_key(capsys)

    async with serve(api_settings(store, auth="on")) as client:
        audit = await client.get("/audit", headers={"Authorization": f"Bearer {key}"})

    entries = [(e["actor"], e["action"], e["target"]) for e in audit.json()["items"]]
    assert ("(command line)", "key.create", "root") in entries
    assert ("(command line)", "user.create", "root") in entries
    assert isinstance(audit, httpx.Response)

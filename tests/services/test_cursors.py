"""Run-list cursors: what the service hands out comes back; nothing else gets through."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.errors import InvalidCursorError
from app.services.cursors import CursorCodec

KEY = b"k" * 32
MOMENT = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)
RUN_ID = str(uuid.uuid4())


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def refused(codec: CursorCodec, cursor: str) -> bool:
    with pytest.raises(InvalidCursorError) as caught:
        codec.decode(cursor)
    return caught.value.loc == ("query", "cursor")


def test_a_cursor_comes_back_as_it_went_out() -> None:
    codec = CursorCodec(KEY)
    east = MOMENT.astimezone(timezone(timedelta(hours=5)))

    assert codec.decode(codec.encode(MOMENT, RUN_ID)) == (MOMENT, RUN_ID)
    assert codec.decode(codec.encode(east, RUN_ID)) == (MOMENT, RUN_ID)


def test_a_cursor_of_another_key_is_refused() -> None:
    """Another process's random key, or a SECRET_KEY that changed."""
    foreign = CursorCodec(b"x" * 32).encode(MOMENT, RUN_ID)

    assert refused(CursorCodec(KEY), foreign)


def test_a_tampered_position_is_refused() -> None:
    codec = CursorCodec(KEY)
    payload, tag = codec.encode(MOMENT, RUN_ID).split(".")
    earlier = b64(json.dumps([(MOMENT - timedelta(days=1)).isoformat(), RUN_ID]).encode())

    assert refused(codec, f"{earlier}.{tag}")
    assert refused(codec, f"{payload}.{tag[:-2]}AA")
    assert refused(codec, f"{payload}.")
    assert refused(codec, payload)


def test_unsigned_cursors_of_earlier_releases_are_refused() -> None:
    unsigned = b64(json.dumps([MOMENT.isoformat(), RUN_ID]).encode())

    assert refused(CursorCodec(KEY), unsigned)


@pytest.mark.parametrize(
    "cursor",
    ["", ".", "..", "a.b.c", "%%%.%%%", "é.é", "A" * 5000, "\x00.\x00", "YQ.YQ", "YQ==.YQ=="],
)
def test_garbage_is_refused(cursor: str) -> None:
    assert refused(CursorCodec(KEY), cursor)


def test_a_signed_payload_must_still_be_a_position() -> None:
    """Belt and braces: even a payload signed with the key is parsed strictly."""
    codec = CursorCodec(KEY)
    for value in ([MOMENT.replace(tzinfo=None).isoformat(), RUN_ID], [1, 2], {"a": 1}, "x"):
        payload = json.dumps(value).encode()
        assert refused(codec, f"{b64(payload)}.{b64(codec._tag(payload))}")


def test_the_key_is_only_for_cursors() -> None:
    """The cursor key is derived from the secret: a plain HMAC under the secret itself (what
    another use of the same secret might sign) is not a valid cursor."""
    import hashlib
    import hmac

    payload = json.dumps([MOMENT.isoformat(), RUN_ID], separators=(",", ":")).encode()
    plain = hmac.new(KEY, payload, hashlib.sha256).digest()

    assert refused(CursorCodec(KEY), f"{b64(payload)}.{b64(plain)}")


def test_an_empty_secret_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="secret"):
        CursorCodec(b"")

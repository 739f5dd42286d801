"""Opaque list cursors: the (created_at, id) of the last run of a page."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime

from app.errors import InvalidCursorError


def encode_cursor(created_at: datetime, run_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), run_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, run id) a cursor carries; InvalidCursorError for anything else.

    Only what `encode_cursor` can produce gets through: an aware datetime that converts to UTC
    and a run id that is a UUID (so no text the database cannot compare, such as NUL).
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw)
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("naive datetime")
        return moment.astimezone(UTC), str(uuid.UUID(run_id))
    except (
        binascii.Error,
        ValueError,
        TypeError,
        AttributeError,
        OverflowError,
        UnicodeDecodeError,
    ) as error:
        raise InvalidCursorError(loc=("query", "cursor")) from error

"""Opaque list cursors: the (created_at, id) of the last run of a page."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from app.errors import InvalidCursorError


def encode_cursor(created_at: datetime, run_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), run_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw)
        moment = datetime.fromisoformat(created_at)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as error:
        raise InvalidCursorError(loc=("query", "cursor")) from error
    if moment.tzinfo is None or not isinstance(run_id, str):
        raise InvalidCursorError(loc=("query", "cursor"))
    return moment, run_id

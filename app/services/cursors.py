"""Opaque list cursors: the (created_at, id) of the last run of a page, signed.

A cursor is `<payload>.<tag>`, both base64url without padding: the payload is the JSON
`[created_at, run_id]`, the tag its HMAC-SHA256 under a key derived from the service's secret.
A cursor is only ever one this service handed out: the tag is checked (in constant time) before
the payload is even parsed, so a caller cannot walk the runs from a position of their choosing
or make the store compare values it never produced. The key is derived for cursors alone, so a
value the same secret signs elsewhere (a session, say) is never a valid cursor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime

from app.errors import InvalidCursorError

PURPOSE = b"flow-manager/run-list-cursor/v1"
SEPARATOR = "."


class CursorCodec:
    """Signs and checks run-list cursors with a key derived from `secret`."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("a cursor codec needs a secret")
        self._key = hmac.new(secret, PURPOSE, hashlib.sha256).digest()

    def encode(self, created_at: datetime, run_id: str) -> str:
        payload = json.dumps([created_at.isoformat(), run_id], separators=(",", ":")).encode()
        return _b64encode(payload) + SEPARATOR + _b64encode(self._tag(payload))

    def decode(self, cursor: str) -> tuple[datetime, str]:
        """The (created_at, run id) a cursor carries; InvalidCursorError for anything else.

        Only what `encode` produced with this key gets through: the tag first, then (belt and
        braces) the payload's shape: an aware datetime that converts to UTC and a run id that
        is a UUID.
        """
        try:
            encoded_payload, encoded_tag = cursor.split(SEPARATOR)
            payload = _b64decode(encoded_payload)
            if not hmac.compare_digest(_b64decode(encoded_tag), self._tag(payload)):
                raise ValueError("the cursor's signature does not match")
            created_at, run_id = json.loads(payload)
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

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    padded = text.encode("ascii") + b"=" * (-len(text) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True)

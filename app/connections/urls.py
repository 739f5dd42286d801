"""Hiding passwords in connection URLs, so error messages and logs can show where we connected.

When a URL is malformed (a password with an unescaped `/`, `?` or `#`), the redaction hides
more than the password rather than risk showing part of it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from app.errors import ConnectionFailedError

MASK = "***"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_AUTHORITY_END = re.compile(r"[/?#]")
# asyncpg also reads `?password=...` (and `sslpassword=`) from the query string.
_QUERY_PASSWORD = re.compile(r"(?i)(password=)([^&#\s]*)")


def redact_url(url: str) -> str:
    """`postgresql://app:secret@db:5432/users` -> `postgresql://app:***@db:5432/users`."""
    head, userinfo, rest = _split_userinfo(url)
    if userinfo is not None:
        user, colon, _ = userinfo.partition(":")
        if colon:
            url = f"{head}{user}:{MASK}@{rest}"
    return _QUERY_PASSWORD.sub(rf"\g<1>{MASK}", url)


def redact_password(text: str, url: str) -> str:
    """Hide in `text` (say, a driver's error message) the URL and any password it holds."""
    text = text.replace(url, redact_url(url))
    for secret in sorted(_passwords(url), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def connection_failed(name: str, url: str, cause: BaseException) -> ConnectionFailedError:
    """`connection 'db' to postgresql://app:***@db/users failed: OSError: ...`.

    Raise it `from None`: a chained cause could carry the password into a logged traceback.
    """
    reason = redact_password(f"{type(cause).__name__}: {cause}", url)
    return ConnectionFailedError(f"connection {name!r} to {redact_url(url)} failed: {reason}")


def _passwords(url: str) -> set[str]:
    _, userinfo, _ = _split_userinfo(url)
    found = {match.group(2) for match in _QUERY_PASSWORD.finditer(url)}
    if userinfo is not None and ":" in userinfo:
        found.add(userinfo.partition(":")[2])
    found |= {unquote(secret) for secret in found}
    return {secret for secret in found if secret}


def _split_userinfo(url: str) -> tuple[str, str | None, str]:
    """Split into (scheme and `//`, user information or None, what follows its `@`)."""
    scheme = _SCHEME.match(url)
    head = scheme.group() if scheme else ""
    rest = url[len(head) :]
    end = _AUTHORITY_END.search(rest)
    authority, tail = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        return head, userinfo, host + tail
    if "@" in tail and _password_cut_short(authority, tail):
        userinfo, _, after = rest.rpartition("@")
        return head, userinfo, after
    return head, None, rest


def _password_cut_short(authority: str, tail: str) -> bool:
    """Whether an unescaped `/`, `?` or `#` in a password ended the authority too early.

    Then what looks like the port is the password's start, or the `@` that ends the user
    information appears in the path; an `@` in the query of a sound URL is left alone.
    """
    path = re.split(r"[?#]", tail, maxsplit=1)[0]
    _, colon, port = authority.rpartition(":")
    has_port = bool(colon) and not authority.endswith("]")  # `[::1]` is an IPv6 host, no port
    return "@" in path or (has_port and not port.isdigit())

"""Hiding passwords in connection URLs, so error messages and logs can show where we connected.

When a URL is malformed (a password with an unescaped `/`, `?` or `#`), the redaction hides
more than the password rather than risk showing part of it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from app.errors import ConnectionFailedError, ConnectionTimeoutError

MASK = "***"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_AUTHORITY_END = re.compile(r"[/?#]")
# asyncpg also reads `?password=...` (and `sslpassword=`) from the query string, and HTTP APIs
# take tokens and keys there: the value of every query parameter whose name says "secret".
_QUERY_PARAMETER = re.compile(r"(?i)([?&;]|^)([a-z0-9_.-]+=)([^&#\s]*)")
_SECRET_PARTS = ("password", "passwd", "token", "secret", "apikey", "signature", "credential")
_SECRET_NAMES = frozenset({"pwd", "pass", "key", "sig", "auth", "authorization", "code"})


def redact_url(url: str) -> str:
    """`postgresql://app:secret@db:5432/users` -> `postgresql://app:***@db:5432/users`."""
    head, userinfo, rest = _split_userinfo(url)
    if userinfo is not None:
        user, colon, _ = userinfo.partition(":")
        if colon:
            url = f"{head}{user}:{MASK}@{rest}"
    return _QUERY_PARAMETER.sub(_masked_parameter, url)


def redact_password(text: str, url: str) -> str:
    """Hide in `text` (say, a driver's error message) the URL and any password it holds."""
    text = text.replace(url, redact_url(url))
    for secret in sorted(_passwords(url), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def connection_failed(
    name: str, url: str, cause: BaseException, *, timeout: float | None = None
) -> ConnectionFailedError:
    """`connection 'db' to postgresql://app:***@db/users failed: OSError: ...`.

    A timeout (`timeout`: the seconds it had) is a `ConnectionTimeoutError`; our own errors
    (a refused destination) are returned as they are. Raise it `from None`: a chained cause
    could carry the password into a logged traceback.
    """
    if isinstance(cause, ConnectionFailedError):
        return cause
    where = f"connection {name!r} to {redact_url(url)}"
    if isinstance(cause, TimeoutError) and timeout is not None:
        return ConnectionTimeoutError(
            f"{where} timed out: no answer within {timeout:g}s (the connection's timeout, "
            "by default CONNECTION_CONNECT_TIMEOUT)"
        )
    reason = redact_password(f"{type(cause).__name__}: {cause}", url)
    return ConnectionFailedError(f"{where} failed: {reason}")


def is_secret_parameter(name: str) -> bool:
    """Whether a query parameter (or header) named so carries a credential."""
    folded = name.lower().replace("-", "").replace("_", "").replace(".", "")
    return folded in _SECRET_NAMES or any(part in folded for part in _SECRET_PARTS)


def _masked_parameter(match: re.Match[str]) -> str:
    start, name, value = match.groups()
    if value and is_secret_parameter(name[:-1]):
        return f"{start}{name}{MASK}"
    return match.group()


def _passwords(url: str) -> set[str]:
    _, userinfo, _ = _split_userinfo(url)
    found = {
        match.group(3)
        for match in _QUERY_PARAMETER.finditer(url)
        if is_secret_parameter(match.group(2)[:-1])
    }
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

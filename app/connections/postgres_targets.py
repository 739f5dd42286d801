"""Where a PostgreSQL URL points: its hosts and ports, its database, and its TLS mode.

asyncpg reads the same URL; we read it to check the destination before connecting, then hand
asyncpg the checked `host`, `port` and `database` explicitly (they take precedence over the
URL's), so it connects exactly where we checked. Defaults follow asyncpg's: port 5432, the
database named like the user, the user from PGUSER or the process's own.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 5432
_VERIFY_FULL = "verify-full"


@dataclass(frozen=True)
class PostgresTarget:
    hosts: tuple[tuple[str, int], ...]  # (host name, address or socket directory; port)
    database: str
    verify_full: bool  # TLS checks the server's certificate against the host name

    @classmethod
    def parse(cls, url: str) -> PostgresTarget:
        parts = urlsplit(url)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        userinfo, _, hostspec = parts.netloc.rpartition("@")
        user = unquote(userinfo.partition(":")[0]) or query.get("user") or _default_user()
        database = (
            unquote(parts.path.lstrip("/"))
            or query.get("dbname")
            or query.get("database")
            or os.environ.get("PGDATABASE")
            or user
        )
        sslmode = (query.get("sslmode") or query.get("ssl") or "").lower()
        return cls(_hosts(hostspec, query), database, sslmode == _VERIFY_FULL)


def _hosts(hostspec: str, query: dict[str, str]) -> tuple[tuple[str, int], ...]:
    names = [unquote(part) for part in (query.get("host") or hostspec).split(",") if part]
    ports = [int(port) for port in query.get("port", "").split(",") if port.strip()]
    hosts: list[tuple[str, int]] = []
    for index, name in enumerate(names or ["localhost"]):  # no host: TCP to localhost
        host, port = _host_and_port(name)
        if port is None:
            port = ports[min(index, len(ports) - 1)] if ports else DEFAULT_PORT
        hosts.append((host, port))
    return tuple(hosts)


def _host_and_port(text: str) -> tuple[str, int | None]:
    if text.startswith("/"):
        return text, None  # a unix socket directory
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:] else None
    host, colon, port = text.rpartition(":")
    if colon and port.isdigit():
        return host, int(port)
    return text, None


def _default_user() -> str:
    return os.environ.get("PGUSER") or getpass.getuser()

"""What a flow may reach: every outbound destination is checked after DNS resolution.

A `DestinationPolicy` is handed to the `ConnectionManager`. Before a connection is made, its host
is resolved once (`loop.getaddrinfo`, off the event loop's thread), every address is checked,
and the connection is then made to a checked address, never to the name again: there is no
window in which a second DNS answer (DNS rebinding) could send it elsewhere. Checking addresses
rather than text also makes every spelling of an address the same address: `127.1`, `0x7f.1`,
`2130706433`, `0177.0.0.1` and `::ffff:127.0.0.1` all resolve to 127.0.0.1.

The rules, in order:
- with a non-empty allow-list, a destination is allowed only when an entry matches: a host
  name entry (`db.internal`) by the name the flow wrote, whatever it resolves to; a `*.domain`
  entry by any sub-domain; an address or CIDR entry (`10.0.0.0/8`) by the resolved address;
  a `:port` suffix also by the port;
- with an empty list and `deny_private_networks`, addresses that are not public are refused:
  loopback, link-local (cloud metadata), private, shared (CGNAT), unspecified, multicast,
  reserved, and IPv6 forms that embed such an IPv4 address (mapped, compatible, 6to4, NAT64);
- the service's own store database is refused to postgres connections unless `allow_store`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.connections.addresses import (
    IPAddress,
    canonical_host,
    endpoint,
    non_public_kind,
    unwrapped,
)
from app.errors import ConnectionFailedError, DestinationRefusedError, InvalidConnectionError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses it resolves to, in the resolver's order
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

ALLOWLIST_SETTING = "CONNECTION_ALLOWLIST"
STORE_SETTING = "CONNECTION_ALLOW_STORE"
CA_BUNDLE_SETTING = "CA_BUNDLE_DIR"


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of `host`, resolved in the event loop's executor (never blocking it)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ConnectionFailedError(f"cannot resolve {host!r}: {error.strerror}") from None
    return list(dict.fromkeys(str(info[4][0]).partition("%")[0] for info in infos))


@dataclass(frozen=True)
class AllowEntry:
    """One CONNECTION_ALLOWLIST entry: a host name, `*.domain`, an address or a network,
    optionally with `:port`."""

    text: str
    name: str | None = None  # a host name, or `.domain` for `*.domain`
    network: Network | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> AllowEntry:
        target, port = _split_port(text.strip())
        try:
            network = ipaddress.ip_network(target.strip("[]"), strict=False)
        except ValueError:
            pass
        else:
            return cls(text, network=network, port=port)
        name = canonical_host(target)
        if name.startswith("*."):
            name = name[1:]
        if not name or "*" in name or "/" in name:
            raise ValueError(f"{ALLOWLIST_SETTING} entry {text!r} is not a host, *.domain or CIDR")
        return cls(text, name=name, port=port)

    def allows_name(self, host: str, port: int) -> bool:
        if self.name is None or self.port not in (None, port):
            return False
        return host.endswith(self.name) if self.name.startswith(".") else host == self.name

    def allows_address(self, address: IPAddress, port: int) -> bool:
        if self.network is None or self.port not in (None, port):
            return False
        return unwrapped(address) in self.network or address in self.network


def _split_port(text: str) -> tuple[str, int | None]:
    """`host:5432` -> (`host`, 5432); `[::1]:5432` -> (`[::1]`, 5432); `::1` -> (`::1`, None)."""
    if text.startswith("["):
        host, _, rest = text.partition("]")
        host += "]"
    elif text.count(":") == 1:
        host, _, rest = text.partition(":")
        rest = ":" + rest
    else:
        return text, None
    if not rest:
        return host, None
    port = rest.removeprefix(":")
    if not rest.startswith(":") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{ALLOWLIST_SETTING} entry {text!r} has an invalid port")
    return host, int(port)


@dataclass(frozen=True)
class StoreDatabase:
    """Where the service's own store lives, so that flows cannot reach it."""

    hosts: tuple[tuple[str, int], ...]  # (host, port) pairs
    database: str


@dataclass(frozen=True)
class Destination:
    """A checked place to connect to: the name asked for and the addresses that passed.

    `addresses` is empty when the policy checks nothing: connect by name, as a driver would.
    """

    host: str
    port: int
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class DestinationPolicy:
    """What flows may connect to. The default allows everything (library and CLI use)."""

    allowlist: tuple[AllowEntry, ...] = ()
    deny_private_networks: bool = False
    store: StoreDatabase | None = None
    allow_store: bool = False
    # `verify:` CA bundle paths must lie inside; None refuses paths. `/` allows any file.
    ca_bundle_dir: Path | None = Path("/")
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def build(
        cls,
        allowlist: Iterable[str] = (),
        *,
        deny_private_networks: bool = False,
        store: StoreDatabase | None = None,
        allow_store: bool = False,
        ca_bundle_dir: Path | None = None,
        resolver: Resolver = system_resolver,
    ) -> DestinationPolicy:
        """The service's policy; an invalid allow-list entry is a ValueError naming it."""
        return cls(
            allowlist=tuple(AllowEntry.parse(entry) for entry in allowlist),
            deny_private_networks=deny_private_networks,
            store=store,
            allow_store=allow_store,
            ca_bundle_dir=ca_bundle_dir.resolve() if ca_bundle_dir is not None else None,
            resolver=resolver,
        )

    @property
    def checks_addresses(self) -> bool:
        """Whether a connection must be resolved and pinned to checked addresses."""
        return bool(self.allowlist) or self.deny_private_networks

    @property
    def guards_store(self) -> bool:
        return self.store is not None and not self.allow_store

    @property
    def allows_unix_sockets(self) -> bool:
        """A socket path has no address to check: only a policy that checks nothing allows it."""
        return not self.checks_addresses

    def refuse_unix_socket(self, subject: str, path: str) -> DestinationRefusedError:
        return DestinationRefusedError(
            _about(
                subject,
                f"the unix socket {path!r} is refused: flows may reach only TCP hosts "
                f"(allowed by {ALLOWLIST_SETTING})",
            )
        )

    async def destination(
        self, subject: str, host: str, port: int, *, database: str | None = None
    ) -> Destination:
        """Resolve `host` once and keep the addresses flows may reach; refuse if none.

        `subject` starts the error messages (`connection 'db'`, or nothing when the caller
        names the step itself); `database` is a postgres connection's database, checked
        against the service's own store.
        """
        guard_store = database is not None and self.guards_store
        if not self.checks_addresses and not guard_store:
            return Destination(host, port)
        name = canonical_host(host)
        try:
            addresses = await self.resolver(name, port)
        except ConnectionFailedError as error:
            raise ConnectionFailedError(_about(subject, error.message)) from None
        if not addresses:
            raise ConnectionFailedError(_about(subject, f"{host!r} resolves to no address"))
        store = await self._store_addresses() if guard_store else frozenset()
        refusals: list[str] = []
        allowed: list[str] = []
        for text in addresses:
            address = ipaddress.ip_address(text)
            refusal = self._refusal(name, address, port)
            if refusal is None and guard_store and self._is_store(address, port, database, store):
                refusal = (
                    f"database {database!r} is the service's own store, which flows may not "
                    f"reach; set {STORE_SETTING}=true to allow it"
                )
            if refusal is None:
                allowed.append(text)
            else:
                refusals.append(f"{endpoint(text, port)} ({host}) {refusal}")
        if not allowed:
            raise DestinationRefusedError(_about(subject, refusals[0]))
        return Destination(host, port, tuple(allowed))

    def _refusal(self, name: str, address: IPAddress, port: int) -> str | None:
        if self.allowlist:
            if any(
                entry.allows_name(name, port) or entry.allows_address(address, port)
                for entry in self.allowlist
            ):
                return None
            return (
                f"is not in {ALLOWLIST_SETTING}; add the host, its address or a network "
                "containing it to allow it"
            )
        if self.deny_private_networks:
            kind = non_public_kind(address)
            if kind is not None:
                return (
                    f"is {kind}, which flows may not reach; list it in {ALLOWLIST_SETTING} "
                    "to allow it"
                )
        return None

    def _is_store(
        self,
        address: IPAddress,
        port: int,
        database: str | None,
        store: frozenset[tuple[IPAddress, int]],
    ) -> bool:
        if self.store is None or database != self.store.database:
            return False
        address = unwrapped(address)
        if (address, port) in store:
            return True
        # A store on this machine is reached through every loopback address (and 0.0.0.0).
        local = address.is_loopback or address.is_unspecified
        return local and any(
            known.is_loopback and known_port == port for known, known_port in store
        )

    async def _store_addresses(self) -> frozenset[tuple[IPAddress, int]]:
        """The store's addresses, resolved at each check (a postgres pool opens rarely)."""
        assert self.store is not None
        found: set[tuple[IPAddress, int]] = set()
        for host, port in self.store.hosts:
            try:
                resolved = await self.resolver(canonical_host(host), port)
            except ConnectionFailedError:
                continue  # an unresolvable store host is reached by no address
            found.update((unwrapped(ipaddress.ip_address(text)), port) for text in resolved)
        return frozenset(found)

    def ca_bundle(self, subject: str, path: str) -> str:
        """The real path of a CA bundle, when it lies in the CA bundle directory."""
        directory = self.ca_bundle_dir
        if directory is None:
            raise InvalidConnectionError(
                f"{subject}: 'verify' may name a CA bundle file only when {CA_BUNDLE_SETTING} "
                "is set to the directory that holds them"
            )
        real = Path(path).resolve()  # symlinks and `..` resolved before the check
        if not real.is_relative_to(directory):
            raise InvalidConnectionError(
                f"{subject}: the CA bundle {path!r} is outside {CA_BUNDLE_SETTING} ({directory})"
            )
        return str(real)


def _about(subject: str, message: str) -> str:
    """`connection 'db': message`; a bare message when the subject is said elsewhere."""
    return f"{subject}: {message}" if subject else message


ALLOW_ALL = DestinationPolicy()  # library and CLI use: the user's own process, own network

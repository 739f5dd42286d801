"""The destination policy on its own: classification, allow-list entries, the store, messages.

Resolution is a fake here (a table of answers), so each rule is checked without a network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path

import pytest

from app.connections.addresses import non_public_kind
from app.connections.destinations import AllowEntry, DestinationPolicy, StoreDatabase
from app.dsl.models import RetryPolicy
from app.engine.retries import is_retryable
from app.errors import ConnectionFailedError, DestinationRefusedError, InvalidConnectionError
from app.services.configuration import store_database


class FakeResolver:
    """Answers from a table; records every question."""

    def __init__(self, answers: dict[str, Sequence[str]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append((host, port))
        return self.answers.get(host, [host])


def policy(*allowlist: str, deny: bool = False, **options: object) -> DestinationPolicy:
    resolver = options.pop("resolver", FakeResolver({"localhost": ["127.0.0.1"]}))
    return DestinationPolicy.build(
        allowlist,
        deny_private_networks=deny,
        resolver=resolver,  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd00::1", "a private address"),
        ("fec0::1", "a private address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("0.0.0.0", "an unspecified address"),
        ("0.1.2.3", "an unspecified address"),
        ("::", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("255.255.255.255", "a private address"),
        ("240.0.0.1", "a private address"),
        ("192.0.2.1", "a private address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a link-local address"),
        ("::127.0.0.1", "an IPv6 address embedding 127.0.0.1, a loopback address"),
        ("2002:7f00:1::", "an IPv6 address embedding 127.0.0.1, a loopback address"),
        ("2002:a00:1::", "an IPv6 address embedding 10.0.0.1, a private address"),
        ("64:ff9b::7f00:1", "an IPv6 address embedding 127.0.0.1, a loopback address"),
        ("64:ff9b::a9fe:a9fe", "an IPv6 address embedding 169.254.169.254, a link-local address"),
        ("64:ff9b:1::1", "a local-use NAT64 address"),
        ("2001:db8::1", "a private address"),  # documentation, as Python classes it
        ("198.18.0.1", "a private address"),
    ],
)
def test_addresses_that_are_not_public_are_named_by_kind(address: str, kind: str) -> None:
    assert non_public_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "1.1.1.1", "2606:4700::1111", "64:ff9b::5db8:d70e"]
)
def test_public_addresses_pass(address: str) -> None:
    assert non_public_kind(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("text", "name", "network", "port"),
    [
        ("db.internal", "db.internal", None, None),
        ("DB.Internal.", "db.internal", None, None),
        ("db.internal:5432", "db.internal", None, 5432),
        ("*.example.com", ".example.com", None, None),
        ("10.0.0.0/8", None, "10.0.0.0/8", None),
        ("127.0.0.1", None, "127.0.0.1/32", None),
        ("127.0.0.1:6379", None, "127.0.0.1/32", 6379),
        ("[::1]:5432", None, "::1/128", 5432),
        ("fd00::/8", None, "fd00::/8", None),
    ],
)
def test_allowlist_entries_are_parsed(
    text: str, name: str | None, network: str | None, port: int | None
) -> None:
    entry = AllowEntry.parse(text)

    assert entry.name == name
    assert (str(entry.network) if entry.network else None) == network
    assert entry.port == port


@pytest.mark.parametrize("text", ["*", "a/b", "host:port", "host:0", "[::1]:x", "*.a*.b"])
def test_invalid_allowlist_entries_name_the_setting(text: str) -> None:
    with pytest.raises(ValueError, match=r"CONNECTION_ALLOWLIST entry"):
        AllowEntry.parse(text)


async def test_the_default_policy_checks_nothing_and_resolves_nothing() -> None:
    resolver = FakeResolver({})
    allow_all = DestinationPolicy(resolver=resolver)

    destination = await allow_all.destination("connection 'db'", "localhost", 5432)

    assert destination.addresses == ()  # connect by name, as the driver would
    assert resolver.asked == []
    assert allow_all.allows_unix_sockets


async def test_the_refusal_names_connection_address_host_and_setting() -> None:
    with pytest.raises(DestinationRefusedError) as refused:
        await policy(deny=True).destination("connection 'db'", "localhost", 5432)

    assert refused.value.message == (
        "connection 'db': 127.0.0.1:5432 (localhost) is a loopback address, which flows may "
        "not reach; list it in CONNECTION_ALLOWLIST to allow it"
    )


async def test_outside_a_non_empty_allowlist_nothing_passes() -> None:
    resolver = FakeResolver({"api.example.com": ["93.184.215.14"]})
    rules = policy("10.0.0.0/8", resolver=resolver)

    with pytest.raises(
        DestinationRefusedError,
        match=r"93\.184\.215\.14:443 \(api\.example\.com\) is not in CONNECTION_ALLOWLIST",
    ):
        await rules.destination("connection 'api'", "api.example.com", 443)
    assert (await rules.destination("x", "10.1.1.1", 443)).addresses == ("10.1.1.1",)


@pytest.mark.parametrize(
    ("entry", "host", "port", "allowed"),
    [
        ("db.internal", "db.internal", 5432, True),
        ("db.internal", "DB.INTERNAL.", 5432, True),
        ("db.internal", "other.internal", 5432, False),
        ("db.internal:5432", "db.internal", 5432, True),
        ("db.internal:5432", "db.internal", 5433, False),
        ("*.example.com", "api.example.com", 443, True),
        ("*.example.com", "a.b.example.com", 443, True),
        ("*.example.com", "example.com", 443, False),
        ("*.example.com", "evilexample.com", 443, False),
        ("127.0.0.1", "127.0.0.1", 6379, True),
        ("127.0.0.1:6379", "127.0.0.1", 6380, False),
        ("127.0.0.1", "::ffff:127.0.0.1", 6379, True),  # the same address, mapped
    ],
)
async def test_allowlist_matching(entry: str, host: str, port: int, allowed: bool) -> None:
    # Every name resolves to loopback: only the entry can allow it.
    resolver = FakeResolver({"db.internal": ["127.0.0.1"], "api.example.com": ["127.0.0.1"]})
    resolver.answers |= {name: ["127.0.0.1"] for name in ("other.internal", "a.b.example.com")}
    resolver.answers |= {name: ["127.0.0.1"] for name in ("example.com", "evilexample.com")}
    rules = policy(entry, resolver=resolver)

    if allowed:
        assert (await rules.destination("c", host, port)).addresses
    else:
        with pytest.raises(DestinationRefusedError):
            await rules.destination("c", host, port)


async def test_a_host_name_entry_allows_the_name_whatever_it_resolves_to() -> None:
    resolver = FakeResolver({"cache.internal": ["10.0.0.7", "127.0.0.1"]})

    destination = await policy("cache.internal", resolver=resolver).destination(
        "c", "cache.internal", 6379
    )

    assert destination.addresses == ("10.0.0.7", "127.0.0.1")


async def test_only_the_allowed_addresses_of_an_answer_are_kept_and_it_is_resolved_once() -> None:
    # DNS rebinding in one answer: a public address first, loopback second.
    resolver = FakeResolver({"rebind.example": ["93.184.215.14", "127.0.0.1"]})

    destination = await policy(deny=True, resolver=resolver).destination("c", "rebind.example", 80)

    assert destination.addresses == ("93.184.215.14",)
    assert resolver.asked == [("rebind.example", 80)]


STORE = StoreDatabase((("db.internal", 5432),), "flow_db")


async def test_the_store_database_is_refused_even_when_its_host_is_listed() -> None:
    resolver = FakeResolver({"db.internal": ["10.0.0.5"], "localhost": ["127.0.0.1"]})
    rules = policy("db.internal", "10.0.0.0/8", store=STORE, resolver=resolver)

    with pytest.raises(DestinationRefusedError) as refused:
        await rules.destination("connection 'db'", "db.internal", 5432, database="flow_db")
    assert refused.value.message == (
        "connection 'db': 10.0.0.5:5432 (db.internal) database 'flow_db' is the service's own "
        "store, which flows may not reach; set CONNECTION_ALLOW_STORE=true to allow it"
    )
    with pytest.raises(DestinationRefusedError, match="own store"):  # by its address too
        await rules.destination("connection 'db'", "10.0.0.5", 5432, database="flow_db")
    # Another database of that server, or the same name on another port, is not the store.
    assert await rules.destination("c", "db.internal", 5432, database="users")
    assert await rules.destination("c", "db.internal", 5433, database="flow_db")
    # Only postgres connections say which database they reach.
    assert await rules.destination("c", "db.internal", 5432)


async def test_a_store_on_loopback_is_the_store_through_every_loopback_spelling() -> None:
    resolver = FakeResolver({"localhost": ["127.0.0.1", "::1"]})
    store = StoreDatabase((("localhost", 5432),), "flow_db")
    rules = DestinationPolicy(store=store, resolver=resolver)  # no allow-list: all else passes

    for host in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1", "0.0.0.0"):
        with pytest.raises(DestinationRefusedError, match="own store"):
            await rules.destination("c", host, 5432, database="flow_db")
    assert await rules.destination("c", "127.0.0.1", 5432, database="other")


async def test_allow_store_lets_flows_reach_it() -> None:
    resolver = FakeResolver({"db.internal": ["10.0.0.5"]})
    rules = policy("db.internal", store=STORE, allow_store=True, resolver=resolver)

    assert await rules.destination("c", "db.internal", 5432, database="flow_db")


def test_the_store_is_read_from_a_postgresql_database_url_only() -> None:
    url = "postgresql+asyncpg://app:pw@db.internal:6543/flow_db?ssl=true"
    assert store_database(url) == StoreDatabase((("db.internal", 6543),), "flow_db")
    assert store_database("sqlite+aiosqlite:///./flows.db") is None
    assert store_database("mysql+aiomysql://root@localhost/flow_db") is None


def test_unix_sockets_are_refused_whenever_addresses_are_checked() -> None:
    assert not policy(deny=True).allows_unix_sockets
    assert not policy("10.0.0.0/8").allows_unix_sockets
    refusal = policy(deny=True).refuse_unix_socket("connection 'cache'", "/run/redis.sock")
    assert "unix socket '/run/redis.sock' is refused" in refusal.message


async def test_a_name_that_does_not_resolve_is_a_connection_failure() -> None:
    async def nothing(host: str, port: int) -> list[str]:
        return []

    with pytest.raises(ConnectionFailedError, match="resolves to no address"):
        await policy(deny=True, resolver=nothing).destination("c", "void.example", 80)


def test_a_refusal_is_a_connection_failure_that_is_never_retried() -> None:
    refusal = DestinationRefusedError("connection 'db': refused")

    assert isinstance(refusal, ConnectionFailedError)
    retry = RetryPolicy(max_attempts=5, retry_on=frozenset({"ConnectionFailedError"}))
    assert not is_retryable(refusal, retry)
    assert not is_retryable(InvalidConnectionError("bad"), RetryPolicy(max_attempts=5))


class TestCaBundles:
    def test_paths_are_refused_when_no_directory_is_configured(self) -> None:
        with pytest.raises(InvalidConnectionError, match="only when CA_BUNDLE_DIR is set"):
            DestinationPolicy.build(ca_bundle_dir=None).ca_bundle("connection 'api'", "/etc/x")

    def test_a_path_inside_the_directory_is_its_real_path(self, tmp_path: Path) -> None:
        (tmp_path / "ca.pem").write_text("x")
        rules = DestinationPolicy.build(ca_bundle_dir=tmp_path)

        assert rules.ca_bundle("c", str(tmp_path / "ca.pem")) == str(tmp_path.resolve() / "ca.pem")

    def test_dot_dot_and_symlinks_leading_out_are_refused(self, tmp_path: Path) -> None:
        bundles = tmp_path / "bundles"
        bundles.mkdir()
        (tmp_path / "secret.pem").write_text("x")
        (bundles / "link.pem").symlink_to(tmp_path / "secret.pem")
        rules = DestinationPolicy.build(ca_bundle_dir=bundles)

        for path in (bundles / ".." / "secret.pem", bundles / "link.pem", Path("/etc/passwd")):
            with pytest.raises(InvalidConnectionError, match="is outside CA_BUNDLE_DIR"):
                rules.ca_bundle("connection 'api'", str(path))

    def test_library_use_accepts_any_path(self) -> None:
        assert DestinationPolicy().ca_bundle("c", "/etc/ssl/certs/x.pem") == "/etc/ssl/certs/x.pem"

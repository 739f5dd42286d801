"""Addresses as the destination policy sees them: canonical hosts, IPv4 inside IPv6, and which
addresses are not public (loopback, link-local, private, shared, unspecified, multicast,
reserved)."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known NAT64 prefix embeds IPv4
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use translation


def canonical_host(host: str) -> str:
    """`DB.Example.com.` -> `db.example.com`; `[::1]` -> `::1`."""
    return host.strip().strip("[]").rstrip(".").lower()


def endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def unwrapped(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address is its IPv4 address: the same host, reached the same way."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and reaches (compatible, 6to4, NAT64)."""
    value = int(address)
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d, IPv4-compatible (deprecated, still routed)
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


def non_public_kind(address: IPAddress) -> str | None:
    """What makes an address one that flows may not reach by default, or None if public."""
    address = unwrapped(address)
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            kind = non_public_kind(embedded)
            return f"an IPv6 address embedding {embedded}, {kind}" if kind else None
        if address in _LOCAL_NAT64:
            return "a local-use NAT64 address"
        if address.is_site_local:
            return "a private address"
    if address.is_unspecified or (
        isinstance(address, ipaddress.IPv4Address) and address.packed[0] == 0
    ):
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None

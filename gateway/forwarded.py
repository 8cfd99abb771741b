"""The client's address as the gateway sees it, through the proxies it trusts.

`X-Forwarded-For` is read only when the connection comes from a trusted proxy
(`GATEWAY_TRUSTED_PROXIES`); then the client is the right-most address of the header that is not a
trusted proxy itself, since everything left of it was written by the client and may be forged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str | Iterable[str]) -> tuple[Network, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128); ValueError on anything else."""
    parts = value.split(",") if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in parts if part.strip())


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client of a connection from `peer` carrying these `X-Forwarded-For` headers, in order.

    Without a trusted peer the headers are ignored. A value that is not an IP address ends the
    walk: the last trusted hop is the client then.
    """
    current = _address(peer or "")
    if current is None:
        return peer or "unknown"
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    while _trusted(current, trusted) and hops:
        previous = _address(hops.pop())
        if previous is None:
            break
        current = previous
    return str(current)

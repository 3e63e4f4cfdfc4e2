"""IP address types of either family, and the few facts that differ between the families.

The network plan, the builder, the nftables and coturn renderers and the services take
`ipaddress` objects of IPv4 or IPv6 alike; where something must be said per family (a host
route's prefix length, the default route, a socket's address family, how a URL writes a host),
they ask the address's `version` through these helpers instead of assuming IPv4.
"""

from __future__ import annotations

import socket
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_interface,
    ip_network,
)
from typing import Literal

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
IPInterface = IPv4Interface | IPv6Interface
Family = Literal[4, 6]  # an address's `version`

IPV4: Family = 4
IPV6: Family = 6


def default_route(family: Family) -> IPNetwork:
    """Every destination of `family`: 0.0.0.0/0 or ::/0."""
    return ip_network("0.0.0.0/0" if family == IPV4 else "::/0")


def host_network(address: IPAddress) -> IPNetwork:
    """`address` alone, as a network (a /32 or a /128)."""
    return ip_network((address, address.max_prefixlen))


def interface(address: IPAddress, prefixlen: int | None = None) -> IPInterface:
    """`address` on a network of `prefixlen` (default: the address alone)."""
    return ip_interface((address, address.max_prefixlen if prefixlen is None else prefixlen))


def socket_family(address: IPAddress) -> socket.AddressFamily:
    """AF_INET or AF_INET6, for a socket that binds or connects to `address`."""
    return socket.AF_INET if address.version == IPV4 else socket.AF_INET6


def url_host(address: IPAddress) -> str:
    """`address` as the host part of a URL or a host:port pair (an IPv6 one in brackets,
    RFC 3986)."""
    return str(address) if address.version == IPV4 else f"[{address}]"

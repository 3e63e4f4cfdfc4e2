"""STUN and TURN URLs (RFC 7064, RFC 7065) of either address family, parsed and written.

`stun:HOST[:PORT]` and `turn[s]:HOST[:PORT][?transport=udp|tcp]`, where HOST is a name, an IPv4
address or an IPv6 address in brackets (RFC 3986's IP-literal: `turn:[2001:db8::a]:3478`).
simnet writes the URLs it hands its peers here (`IceUrl.__str__`), and the aiortc agent reads
them here: aiortc's own parser takes every host up to the first colon, so it rejects an IPv6
literal (`simnet.peer.aiortc.aioice_adapter.accept_ip_literals` puts this parser in its place).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from ipaddress import ip_address
from typing import Literal

from simnet.addresses import IPAddress, url_host

Scheme = Literal["stun", "stuns", "turn", "turns"]
SCHEMES: tuple[Scheme, ...] = ("stun", "stuns", "turn", "turns")
DEFAULT_PORTS = {"stun": 3478, "turn": 3478, "stuns": 5349, "turns": 5349}

_URL = re.compile(
    r"(?P<scheme>stuns?|turns?):"
    r"(?:\[(?P<literal>[0-9A-Fa-f:.]+)\]|(?P<host>[^?:\[\]/]+))"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>[A-Za-z0-9._~-]+))?"
)


def host_port(host: str, port: int) -> str:
    """`host:port`, an IPv6 address in brackets (`[2001:db8::a]:3478`): how simnet writes a
    TURN server's endpoint in rows (`turn_attempts`, `relay_server`)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(endpoint: str) -> tuple[str, int]:
    """`host_port`'s parts: the host without brackets, and the port."""
    host, _, port = endpoint.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


def family_name(address: str) -> Literal["ipv4", "ipv6"] | None:
    """ipv4 or ipv6 for an address literal; None for anything else (an mDNS name)."""
    try:
        return "ipv4" if ip_address(address).version == 4 else "ipv6"
    except ValueError:
        return None


@dataclass(frozen=True)
class IceUrl:
    """One STUN or TURN URL. `host` is a name or an address literal without brackets;
    `transport` is None for STUN, udp or tcp for TURN (the scheme's default when the URL has
    none: udp for turn, tcp for turns)."""

    scheme: Scheme
    host: str
    port: int
    transport: str | None = None

    @classmethod
    def parse(cls, url: str) -> IceUrl:
        """The URL's parts; `ValueError` naming what is wrong with it."""
        match = _URL.fullmatch(url)
        if match is None:
            raise ValueError(f"malformed STUN/TURN URL {url!r}")
        scheme = next(s for s in SCHEMES if s == match["scheme"])
        host = match["literal"] or match["host"]
        if match["literal"] is not None:
            try:
                if ip_address(host).version != 6:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{url!r}: [{host}] is not an IPv6 address") from None
        port = int(match["port"]) if match["port"] else DEFAULT_PORTS[scheme]
        if not 1 <= port <= 65535:
            raise ValueError(f"{url!r}: port {port} is not in 1-65535")
        transport = match["transport"]
        if scheme.startswith("stun"):
            if transport is not None:
                raise ValueError(f"{url!r}: a {scheme} URL takes no transport")
        elif transport is None:
            transport = "tcp" if scheme == "turns" else "udp"
        return cls(scheme=scheme, host=host, port=port, transport=transport)

    @classmethod
    def of(
        cls, scheme: Scheme, host: IPAddress | str, port: int, transport: str | None = None
    ) -> IceUrl:
        """A URL to `host` (an address of either family, or a name)."""
        return cls(scheme=scheme, host=str(host), port=port, transport=transport)

    @property
    def address(self) -> IPAddress | None:
        """The host as an address, or None when it is a name."""
        try:
            return ip_address(self.host)
        except ValueError:
            return None

    @property
    def is_turn(self) -> bool:
        return self.scheme.startswith("turn")

    def with_host(self, host: IPAddress | str) -> IceUrl:
        """The same URL to another host (a name's address)."""
        return replace(self, host=str(host))

    def __str__(self) -> str:
        address = self.address
        host = self.host if address is None else url_host(address)
        query = "" if self.transport is None else f"?transport={self.transport}"
        return f"{self.scheme}:{host}:{self.port}{query}"

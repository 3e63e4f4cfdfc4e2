"""The address families of a scenario: what a network's users get (`ip: v4 | dual | v6`), the
IPv6 side of a router (`v6_filtering`), NAT64 on an IPv6-only carrier, black-holed families,
and the checks that tie them together across NATs.

IPv6 is never translated: a router's IPv6 side forwards and filters statefully as a home router
does (RFC 6092), `open`, `address-dependent` or `address-and-port-dependent` (the default). A
scenario without any of these knobs is IPv4 only, as a network was before families existed.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from ipaddress import IPv6Network
from typing import Literal

from simnet.addresses import IPV4, IPV6, Family
from simnet.scenario.nat import Filtering

IpVersion = Literal["v4", "dual", "v6"]
Blackhole = Literal["blackhole"]
RelayFamily = Literal["ipv4", "ipv6"]
IP_VERSIONS: tuple[IpVersion, ...] = ("v4", "dual", "v6")

FAMILIES: dict[IpVersion, frozenset[Family]] = {
    "v4": frozenset({IPV4}),
    "dual": frozenset({IPV4, IPV6}),
    "v6": frozenset({IPV6}),
}
FAMILY_WORDS: dict[Family, RelayFamily] = {IPV4: "ipv4", IPV6: "ipv6"}
WORD_FAMILIES: dict[RelayFamily, Family] = {"ipv4": IPV4, "ipv6": IPV6}

#: RFC 3849's documentation range: every emulated IPv6 address lies in it
DOCUMENTATION_V6 = IPv6Network("2001:db8::/32")
#: inside it, what the plan keeps for itself: the core, servers, NAT WANs and public hosts
#: (2001:db8::/48) and the NAT64 prefixes (2001:db8:64::/48); a `lan6:` must avoid both
RESERVED_V6 = (IPv6Network("2001:db8::/48"), IPv6Network("2001:db8:64::/48"))
LAN6_PREFIX = 64


class V6Filtering(StrEnum):
    """Which unsolicited inbound IPv6 packets a router's stateful firewall lets into its LAN
    (RFC 6092; the names are RFC 4787's filtering names, IPv6 having no mapping)."""

    OPEN = "open"
    ADF = "address-dependent"
    APDF = "address-and-port-dependent"

    @property
    def short(self) -> str:
        return {"open": "open", "address-dependent": "ADF"}.get(self.value, "APDF")

    @property
    def as_filtering(self) -> Filtering:
        """The RFC 4787 filtering a probe observes (open: endpoint-independent)."""
        return Filtering.EIF if self is V6Filtering.OPEN else Filtering(self.value)

    @classmethod
    def of(cls, filtering: Filtering) -> V6Filtering:
        """The word for an observed filtering."""
        return cls.OPEN if filtering is Filtering.EIF else cls(filtering.value)


V6_FILTERING_ALIASES = {"adf": V6Filtering.ADF, "apdf": V6Filtering.APDF}
_STRICTNESS = {V6Filtering.OPEN: 0, V6Filtering.ADF: 1, V6Filtering.APDF: 2}


def strictest(filterings: Iterable[V6Filtering]) -> V6Filtering:
    """What a host sees through a chain of IPv6 firewalls: the strictest of them."""
    return max(filterings, key=_STRICTNESS.__getitem__, default=V6Filtering.OPEN)


def family_list(families: Iterable[Family]) -> str:
    """`families` as the words a scenario uses, e.g. 'IPv4 and IPv6'."""
    return " and ".join(f"IPv{f}" for f in sorted(families)) or "none"


def ip_of(families: frozenset[Family]) -> IpVersion:
    """The `ip:` word of a set of families."""
    return next(word for word, fams in FAMILIES.items() if fams == families)


def lan6_problem(net: IPv6Network) -> str | None:
    """Why `net` cannot be a LAN's IPv6 range (None: it can)."""
    if not net.subnet_of(DOCUMENTATION_V6):
        return (
            f"{net} is outside 2001:db8::/32, the documentation range every emulated IPv6 "
            "address comes from; use e.g. 2001:db8:3:ff::/64"
        )
    if net.prefixlen != LAN6_PREFIX:
        return f"{net}: an IPv6 LAN is a /64 (RFC 4291), e.g. 2001:db8:3:ff::/64"
    for reserved in RESERVED_V6:
        if net.overlaps(reserved):
            return (
                f"{net} overlaps {reserved}, which the plan keeps for the core, servers, NAT "
                "WANs, public hosts and NAT64 prefixes; use one outside it, e.g. "
                "2001:db8:3:ff::/64"
            )
    return None


def nat_family_problem(
    *,
    ip: IpVersion,
    nat64: bool,
    preset: str,
    preset_given: bool,
    ipv4_knobs: Iterable[str],
    v6_knobs: Iterable[str],
    blackholed: frozenset[Family],
    block: Iterable[Family],
) -> str | None:
    """Why a NAT's family knobs contradict each other (None: they fit).

    `ipv4_knobs`: the IPv4 NAT knobs set (mapping, filtering, ...); `v6_knobs`: the IPv6 ones
    set (v6_filtering, lan6); `block`: the families of the firewall's blocked ranges."""
    families = FAMILIES[ip]
    if nat64 and ip != "v6":
        return (
            f"nat64: a NAT64 serves an IPv6-only network, but ip is {ip}; set ip: v6 (a "
            "carrier whose users get IPv6 only) or remove nat64"
        )
    if nat64 and preset in ("open", "cgnat"):
        return (
            f"nat64: preset {preset} cannot describe a NAT64's IPv4 side; leave preset out "
            "(default: symmetric, random ports) or choose a NAT preset"
        )
    if IPV6 not in families:
        knobs = [*v6_knobs, *(["v6: blackhole"] if IPV6 in blackholed else [])]
        if IPV6 in block:
            knobs.append("firewall.block (an IPv6 range)")
        if knobs:
            return (
                f"{knobs[0]}: an IPv6 knob on a network whose users get IPv4 only "
                "(ip: v4, the default); set ip: dual or v6, or remove it"
            )
    if IPV4 not in families:
        if IPV4 in blackholed:
            return "v4: blackhole: no IPv4 leaves an IPv6-only network (ip: v6); remove it"
        knobs = list(ipv4_knobs)
        if preset_given and preset not in ("open", "cgn", "cgnat"):
            knobs.insert(0, "preset")
        if knobs and not nat64:
            return (
                f"{knobs[0]}: an IPv4 NAT knob on an IPv6-only network without a NAT64 (IPv6 "
                "is never translated); remove it, use v6_filtering for the IPv6 firewall, or "
                "set nat64: true to give it a NAT64 whose IPv4 side these knobs describe"
            )
    if blackholed and blackholed >= families:
        return (
            f"{'v4' if IPV4 in blackholed else 'v6'}: blackhole: every family of this network "
            "would be black-holed; to cut a network, use a timeline's `cut`"
        )
    return None

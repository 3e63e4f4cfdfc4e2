"""A router's forward path per address family: its IPv6 side and its black-holed families.

IPv6 is never translated. A home router's IPv6 side forwards, and filters as RFC 6092 asks:
what leaves the LAN and its replies pass, unsolicited inbound packets are dropped. How much is
unsolicited is `v6_filtering`, in RFC 4787's filtering words (IPv6 has no mapping to filter on):

  open                        everything inbound passes (a router without a firewall)
  address-dependent           a packet from a remote address an inside host has sent to
                              passes, whatever its ports: a dynamic set of (inside address,
                              remote address) pairs, filled by outbound packets, each pair
                              living the router's binding timeout (udp_timeout_s)
  address-and-port-dependent  only conntrack's established and related packets pass

Related packets are conntrack's ICMPv6 errors about a flow (packet too big, unreachable), so
path MTU discovery and errors work; neighbour discovery is link-local and never forwarded.
Conntrack's UDP timeouts are the binding timeout, as for IPv4 (the builder sets them).

A black-holed family (`v4: blackhole`, `v6: blackhole`) is dropped silently on its way from the
LAN through the router (no ICMP error), as a broken route upstream would: applications see
their packets vanish, which is what makes a broken family slow to fall back from.

Everything is one `table inet simnet_forward`, apart from the `simnet` table of the router's
translation (`simnet.net.nftables`): a scenario without a family knob renders no such table.
The router's firewall judges IPv6 here with the same rules as IPv4 there. nftables 1.0.6 loads
this table (the set's `ipv6_addr . ipv6_addr` key is plain packet fields, not the conntrack
tuple whose concatenation it aborts on: see `simnet.net.nftables`).
"""

from __future__ import annotations

from typing import Literal

from simnet.addresses import IPV4, IPV6, Family, IPAddress
from simnet.net.plan import LAN_IF, WAN_IF, RouterPlan
from simnet.scenario.family import V6Filtering
from simnet.scenario.model import FirewallSpec

FORWARD_TABLE = "simnet_forward"
ADF_SET = "adf6"
NFPROTO: dict[Family, str] = {IPV4: "ipv4", IPV6: "ipv6"}


def match(family: Family) -> Literal["ip", "ip6"]:
    """The keyword of an address match (`ip saddr`, `ct original ip6 daddr`, `snat ip to`)."""
    return "ip" if family == IPV4 else "ip6"


def render_forward(router: RouterPlan) -> str:
    """`table inet simnet_forward` for one router, or nothing for one without an IPv6 side
    or a black-holed family."""
    if router.lan6 is None and not router.blackholed:
        return ""
    sets: list[str] = []
    firewall: list[str] = []
    rules = [
        f'    iifname "{LAN_IF}" meta nfproto {NFPROTO[family]} drop'
        for family in sorted(router.blackholed)
    ]
    rules.append(f"    meta nfproto != {NFPROTO[IPV6]} accept")
    if router.lan6 is not None and IPV6 not in router.blackholed:
        if router.firewall is not None:  # its own chain: its accepts must not skip the state
            firewall = [
                "  chain firewall {",
                "    type filter hook forward priority filter - 1; policy accept;",
                f"    meta nfproto != {NFPROTO[IPV6]} accept",
                *firewall_rules(_ipv6_part(router.firewall), router.proxy, {IPV6}),
                "  }",
            ]
        if router.v6_filtering is V6Filtering.ADF:  # every outbound packet refreshes its pair
            timeout = router.behavior.udp_timeout_s
            sets.append(
                f"  set {ADF_SET} {{ type ipv6_addr . ipv6_addr; flags dynamic,timeout; "
                f"timeout {timeout}s; }}"
            )
            rules.append(f'    iifname "{LAN_IF}" update @{ADF_SET} {{ ip6 saddr . ip6 daddr }}')
        rules.append("    ct state established,related accept")
        if router.v6_filtering is V6Filtering.ADF:
            rules.append(f'    iifname "{WAN_IF}" ip6 daddr . ip6 saddr @{ADF_SET} accept')
        if router.v6_filtering is not V6Filtering.OPEN:
            rules.append(f'    iifname "{WAN_IF}" drop')
    return "\n".join(
        [
            f"table inet {FORWARD_TABLE} {{",
            *sets,
            *firewall,
            "  chain forward {",
            "    type filter hook forward priority filter; policy accept;",
            *rules,
            "  }",
            "}",
            "",
        ]
    )


def _ipv6_part(firewall: FirewallSpec) -> FirewallSpec:
    return firewall.model_copy(update={"block": [n for n in firewall.block if n.version == IPV6]})


def firewall_rules(
    firewall: FirewallSpec,
    proxy: tuple[tuple[IPAddress, ...], int] | None = None,
    families: frozenset[Family] | set[Family] = frozenset({IPV4, IPV6}),
) -> list[str]:
    """The firewall's rules, for the families of its blocked ranges (and any other packet).

    With `proxy` (`firewall.proxy_only`'s addresses and port), only new TCP connections to the
    proxy's addresses of `families` (those the table matches) leave the LAN."""
    rules = []
    for family in sorted({network.version for network in firewall.block}):
        ip = match(family)
        blocked = ", ".join(str(n) for n in firewall.block if n.version == family)
        rules += [f"    {ip} daddr {{ {blocked} }} drop", f"    {ip} saddr {{ {blocked} }} drop"]
    if firewall.block_udp:
        rules.append("    meta l4proto udp drop")
    rules.append("    ct state established,related accept")
    if proxy is not None:
        addresses, port = proxy
        for family in sorted({a.version for a in addresses} & set(families)):
            to = ", ".join(str(a) for a in addresses if a.version == family)
            rules.append(
                f'    iifname "{LAN_IF}" {match(family)} daddr {{ {to} }} tcp dport {port} accept'
            )
    if firewall.allow and proxy is None:
        for proto in ("tcp", "udp"):
            ports = [r.split("/")[1] for r in firewall.allow if r.startswith(proto)]
            if ports:
                rules.append(
                    f'    iifname "{LAN_IF}" {proto} dport {{ {", ".join(ports)} }} accept'
                )
    if firewall.allow or proxy is not None:
        rules.append(f'    iifname "{LAN_IF}" drop')
    return rules

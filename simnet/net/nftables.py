"""Rendering a router's NAT behaviour and firewall as an nftables ruleset.

Linux conntrack alone is a port-preserving NAT with address-and-port-dependent filtering. Every
other RFC 4787 behaviour needs state of our own, kept in nftables dynamic maps whose timeouts are
the binding timeout:

  eim / adm      internal endpoint (+ remote address for ADM)  -> external port: reuse a mapping
  busy           internal endpoints that hold a mapping (APDM: never reuse their port)
  used           external ports held by a mapping (preservation must not share a port)
  rev_addr/port  external port -> internal endpoint (endpoint-/address-dependent filtering and
                 hairpinning deliver unsolicited packets through it)
  adf            (external port, remote address) pairs a mapping has sent to (ADF)

Maps are filled after NAT (postrouting, priority 200) from the conntrack tuples, in both flow
directions, so outbound packets refresh a binding (RFC 4787 REQ-6).

Unsolicited inbound packets are decided at prerouting priority -150, before conntrack confirms
an entry for them. Letting conntrack keep such an entry is the simultaneous-open trap
(docs/kernel-notes.md#simultaneous-open-pitfall): the local peer's later outbound packet would
then lose its preserved port.

Rules are written for the router's address family: `ip`/`ip6` match keywords, `ipv4_addr`/
`ipv6_addr` state types and ICMP/ICMPv6 echo. The table is `ip` for an IPv4 router, `ip6` for an
IPv6 one and `inet` for a router that has both (`table_family`). nftables 1.0.6 (Debian 12)
aborts on the eim and adm updates of an IPv6 NAT (an assertion in netlink_linearize.c, for
`ct original ip6 saddr . ct original proto-src` as a map key); `nft -c` accepts every other IPv6
ruleset rendered here.
"""

from __future__ import annotations

from typing import Literal

from simnet.addresses import IPV4, IPV6, Family, IPAddress, IPNetwork
from simnet.net.plan import LAN_IF, WAN_IF, RouterPlan
from simnet.scenario.model import FirewallSpec
from simnet.scenario.nat import Filtering, Mapping, NatBehavior, PortAllocation

TABLE = "simnet"
NAT64_TABLE = "nat64"  # the IPv4 side of a NAT64, beside the router's own table
SEQUENTIAL_BASE = 20000  # sequential allocation hands out 20000, 20001, ... 21023, then wraps
SEQUENTIAL_SPAN = 1024


TableFamily = Literal["ip", "ip6", "inet"]


def render_router(router: RouterPlan) -> str:
    """The whole `table <family> simnet` for one router."""
    body: list[str] = []
    # a NAT64's IPv4 translation is `render_nat64`'s table (its inside is tayga, not the LAN)
    if router.behavior.translates and router.nat64_pool is None:
        body += _nat(router.behavior, router.wan_address, router.lan)
    if router.firewall is not None:
        body += _firewall(router.firewall)
    if not body:
        return ""
    return f"table {table_family(router)} {TABLE} {{\n" + "\n".join(body) + "\n}\n"


def table_family(router: RouterPlan) -> TableFamily:
    """The nftables family of `router`'s table: that of its addresses and blocked ranges,
    `inet` if they are of both families."""
    families = {router.wan_address.version, router.lan.version}
    if router.firewall is not None:
        families |= {network.version for network in router.firewall.block}
    if families == {IPV4}:
        return "ip"
    if families == {IPV6}:
        return "ip6"
    return "inet"


def match(family: Family) -> Literal["ip", "ip6"]:
    """The keyword of an address match (`ip saddr`, `ct original ip6 daddr`, `snat ip to`)."""
    return "ip" if family == IPV4 else "ip6"


def _state(behavior: NatBehavior, family: Family) -> list[str]:
    timeout = f"flags dynamic,timeout; timeout {behavior.udp_timeout_s}s;"
    addr = "ipv4_addr" if family == IPV4 else "ipv6_addr"
    sets = {
        "used": "inet_service",
        "rev_addr": f"inet_service : {addr}",
        "rev_port": "inet_service : inet_service",
    }
    if behavior.mapping is Mapping.EIM:
        sets["eim"] = f"{addr} . inet_service : inet_service"
    elif behavior.mapping is Mapping.ADM:
        sets["adm"] = f"{addr} . inet_service . {addr} : inet_service"
    else:
        sets["busy"] = f"{addr} . inet_service"
    if behavior.filtering is Filtering.ADF:
        sets["adf"] = f"inet_service . {addr}"
    return [
        f"  {'map' if ':' in kind else 'set'} {name} {{ type {kind}; {timeout} }}"
        for name, kind in sets.items()
    ]


def _fresh_port(behavior: NatBehavior, ip: str, to: str) -> list[str]:
    """Rules that pick the external port of a new mapping (`ip`: the match keyword)."""
    match behavior.port_allocation:
        case PortAllocation.PRESERVE:
            return [
                f"    udp sport @used snat {ip} to {to} random",  # taken: like a collision
                f"    snat {ip} to {to}",  # conntrack keeps the source port when it is free
            ]
        case PortAllocation.SEQUENTIAL:
            # numgen's counter is host byte order and a port is network order, and nft has no
            # conversion: a literal map from counter to port does it (measured: +256 steps without).
            ports = ", ".join(f"{i} : {SEQUENTIAL_BASE + i}" for i in range(SEQUENTIAL_SPAN))
            return [
                f"    meta l4proto udp snat {ip} to {to} : "
                f"numgen inc mod {SEQUENTIAL_SPAN} map {{ {ports} }}"
            ]
        case PortAllocation.RANDOM:
            return [f"    snat {ip} to {to} random"]


def _record(behavior: NatBehavior, internal: str, external: str, remote: str) -> list[str]:
    """Rules that remember a mapping, given conntrack expressions for its parts."""
    rules = [
        f"    meta l4proto udp update @used {{ {external} }}",
        f"    meta l4proto udp update @rev_addr {{ {external} : {internal.split(' . ')[0]} }}",
        f"    meta l4proto udp update @rev_port {{ {external} : {internal.split(' . ')[1]} }}",
    ]
    if behavior.mapping is Mapping.EIM:
        rules.append(f"    meta l4proto udp update @eim {{ {internal} : {external} }}")
    elif behavior.mapping is Mapping.ADM:
        rules.append(f"    meta l4proto udp update @adm {{ {internal} . {remote} : {external} }}")
    else:
        rules.append(f"    meta l4proto udp update @busy {{ {internal} }}")
    if behavior.filtering is Filtering.ADF:
        rules.append(f"    meta l4proto udp update @adf {{ {external} . {remote} }}")
    return rules


def render_nat64(behavior: NatBehavior, wan: IPAddress, pool: IPNetwork, inside: str) -> str:
    """The IPv4 side of a NAT64 (`simnet.net.nat64`): tayga's `pool` translated to the router's
    IPv4 `wan` address with `behavior`, `inside` (tayga's TUN) being the NAT's inside interface.

    A table of its own (`table ip nat64`), so it sits beside the router's `simnet` table,
    whatever that one holds for the router's IPv6 side."""
    body = _nat(behavior, wan, pool, inside)
    return f"table {match(wan.version)} {NAT64_TABLE} {{\n" + "\n".join(body) + "\n}\n"


def _nat(behavior: NatBehavior, wan: IPAddress, lan: IPNetwork, inside: str = LAN_IF) -> list[str]:
    """The NAT's chains and state; `inside` is the interface its LAN (`lan`) is behind."""
    ip = match(wan.version)
    to = str(wan) if wan.version == IPV4 else f"[{wan}]"  # an IPv6 one bracketed before a port
    echo = "icmp type echo-request" if wan.version == IPV4 else "icmpv6 type echo-request"
    unsolicited = {
        Filtering.EIF: ["    udp dport @used accept"],
        Filtering.ADF: [f"    udp dport . {ip} saddr @adf accept"],
        Filtering.APDF: [],
    }[behavior.filtering]
    deliver = f"udp dport @used dnat {ip} to udp dport map @rev_addr : udp dport map @rev_port"
    reuse = {
        Mapping.EIM: [
            f"    {ip} saddr . udp sport @eim snat {ip} to {to} : {ip} saddr . udp sport map @eim"
        ],
        Mapping.ADM: [
            f"    {ip} saddr . udp sport . {ip} daddr @adm snat {ip} to {to} : "
            f"{ip} saddr . udp sport . {ip} daddr map @adm"
        ],
        Mapping.APDM: [f"    {ip} saddr . udp sport @busy snat {ip} to {to} random"],
    }[behavior.mapping]
    hairpin_in = [f'    iifname "{inside}" {ip} daddr {wan} {deliver}'] if behavior.hairpin else []
    hairpin_out = (
        [f'    oifname "{inside}" ct status dnat {ip} saddr {lan} jump translate']
        if behavior.hairpin
        else []
    )
    inbound_delivery = (
        [f'    iifname "{WAN_IF}" {deliver}'] if behavior.filtering is not Filtering.APDF else []
    )
    original = _record(
        behavior,
        f"ct original {ip} saddr . ct original proto-src",
        "ct reply proto-dst",
        f"ct original {ip} daddr",
    )
    reply = _record(
        behavior,
        f"ct reply {ip} saddr . ct reply proto-src",
        "ct original proto-dst",
        f"ct reply {ip} daddr",
    )
    return [
        *_state(behavior, wan.version),
        "  chain inbound {",
        "    type filter hook prerouting priority -150; policy accept;",
        f'    iifname "{WAN_IF}" ct state new jump unsolicited',
        "  }",
        "  chain unsolicited {",
        f"    fib daddr type local {echo} accept",
        *unsolicited,
        "    drop",
        "  }",
        "  chain dstnat {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        *inbound_delivery,
        *hairpin_in,
        "  }",
        "  chain srcnat {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        f'    oifname "{WAN_IF}" jump translate',
        *hairpin_out,
        "  }",
        "  chain translate {",
        f"    meta l4proto != udp snat {ip} to {to}",
        *reuse,
        *_fresh_port(behavior, ip, to),
        "  }",
        "  chain record {",
        "    type filter hook postrouting priority 200; policy accept;",
        "    meta l4proto udp ct direction original ct status snat jump record_original",
        "    meta l4proto udp ct direction reply ct status dnat jump record_reply",
        "  }",
        "  chain record_original {",
        *original,
        "  }",
        "  chain record_reply {",
        *reply,
        "  }",
    ]


def _firewall(firewall: FirewallSpec) -> list[str]:
    """Outbound policy; what comes back on an allowed flow is let through."""
    rules = []
    for family in sorted({network.version for network in firewall.block}):
        ip = match(family)
        blocked = ", ".join(str(n) for n in firewall.block if n.version == family)
        rules += [f"    {ip} daddr {{ {blocked} }} drop", f"    {ip} saddr {{ {blocked} }} drop"]
    if firewall.block_udp:
        rules.append("    meta l4proto udp drop")
    rules.append("    ct state established,related accept")
    if firewall.allow:
        for proto in ("tcp", "udp"):
            ports = [r.split("/")[1] for r in firewall.allow if r.startswith(proto)]
            if ports:
                rules.append(
                    f'    iifname "{LAN_IF}" {proto} dport {{ {", ".join(ports)} }} accept'
                )
        rules.append(f'    iifname "{LAN_IF}" drop')
    return [
        "  chain firewall {",
        "    type filter hook forward priority filter; policy accept;",
        *rules,
        "  }",
    ]

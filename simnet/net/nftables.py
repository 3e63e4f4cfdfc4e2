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

Rules are written for the translated family: `ip`/`ip6` match keywords, `ipv4_addr`/
`ipv6_addr` state types and ICMP/ICMPv6 echo (`table_family`). simnet translates IPv4 only (a
NAT64 carrier's IPv4 side, whose inside is its NAT64 and not its LAN, is rendered apart from
`render_router`); a router's IPv6 side, which forwards without
translation and filters statefully, and its black-holed families are a table of their own
(`simnet.net.forward_rules`, `table inet simnet_forward`), rendered after this one. nftables 1.0.6
(Debian 12) aborts on the eim and adm updates of an IPv6 NAT (an assertion in
netlink_linearize.c, for `ct original ip6 saddr . ct original proto-src` as a map key); `nft -c`
accepts every other IPv6 ruleset rendered here.
"""

from __future__ import annotations

from typing import Literal

from simnet.addresses import IPV4, IPV6, Family, IPAddress, IPNetwork
from simnet.net.forward_rules import firewall_rules, match, render_forward
from simnet.net.plan import LAN_IF, NAT64_IF, WAN_IF, RouterPlan
from simnet.scenario.model import FirewallSpec
from simnet.scenario.nat import Filtering, Mapping, NatBehavior, PortAllocation

TABLE = "simnet"
SEQUENTIAL_BASE = 20000  # sequential allocation hands out 20000, 20001, ... 21023, then wraps
SEQUENTIAL_SPAN = 1024


TableFamily = Literal["ip", "ip6", "inet"]


def render_router(router: RouterPlan) -> str:
    """The rulesets of one router: `table <family> simnet` (its translation and, for the
    families it translates, its firewall), then its forward path per family."""
    body: list[str] = []
    if router.behavior.translates:
        inside = NAT64_IF if router.nat64_pool is not None else LAN_IF  # tayga's TUN, or the LAN
        body += _nat(router.behavior, router.wan_address, _inside(router), inside)
    firewall = _translated_firewall(router)
    if firewall is not None:
        body += _firewall(firewall, router)
    tables = render_forward(router)
    if body:
        tables = f"table {table_family(router)} {TABLE} {{\n" + "\n".join(body) + "\n}\n" + tables
    return tables


def _inside(router: RouterPlan) -> IPNetwork:
    """What the router's IPv4 side holds: its LAN, or a NAT64 carrier's IPv4 pool."""
    return router.nat64_pool or router.lan


def _translated_firewall(router: RouterPlan) -> FirewallSpec | None:
    """The part of the firewall for the `simnet` table: all of it in a router without an IPv6
    side; else its IPv4 part (if the router has IPv4), the rest being the forward table's."""
    firewall = router.firewall
    if firewall is None or router.lan6 is None:
        return firewall
    if router.wan4 is None:
        return None
    return firewall.model_copy(update={"block": [n for n in firewall.block if n.version == IPV4]})


def table_family(router: RouterPlan) -> TableFamily:
    """The nftables family of `router`'s `simnet` table: that of its addresses and blocked
    ranges, `inet` if they are of both families."""
    families = {router.wan_address.version, _inside(router).version}
    firewall = _translated_firewall(router)
    if firewall is not None:
        families |= {network.version for network in firewall.block}
    if families == {IPV4}:
        return "ip"
    if families == {IPV6}:
        return "ip6"
    return "inet"


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


def _firewall(firewall: FirewallSpec, router: RouterPlan) -> list[str]:
    """Outbound policy; what comes back on an allowed flow is let through."""
    family = table_family(router)
    families = {IPV4, IPV6} if family == "inet" else {IPV4 if family == "ip" else IPV6}
    return [
        "  chain firewall {",
        "    type filter hook forward priority filter; policy accept;",
        *firewall_rules(firewall, router.proxy, families),
        "  }",
    ]

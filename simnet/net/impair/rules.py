"""What each backend installs for a link, rendered as text: pure, so unit tests can read it.

A link is the veth that attaches node `a` (a host, server or router) to the core or to its
router's LAN bridge (node `b`). "up" leaves `a` through `a_if`; "down" leaves `b` through `b_if`.
Everything is installed in `a`'s and `b`'s namespaces, never in the host's own.

* rate: tbf on the egress of the sending end (`a_if` for up, `b_if` for down);
* netem backend: one netem qdisc on that same egress does the rest, tbf as its child;
* userspace backend:
  - independent loss (where no delay line runs) and duplication: an nftables `netdev` chain on
    the egress hook of the sending end: `numgen random` drops, `dup to` the same device copies
    (the copy is marked so it is not copied again);
  - delay, jitter, Gilbert-Elliott loss (and independent loss when a delay line runs anyway): an
    NFQUEUE per direction, fed from iptables' `raw` table, i.e. *before* conntrack, so a NAT
    router never holds a packet whose connection is half-made (a packet queued after conntrack
    sits there unconfirmed, and the next packet of its flow would create a second conntrack
    entry, possibly a second NAT mapping). Each direction is queued where the packet has
    *arrived* over the veth: down on `PREROUTING -i a_if` in `a`; up in `b`, on
    `PREROUTING -i b_if` (the core) or, on a LAN, on `PREROUTING -i <bridge>` for frames from
    `a_if`'s MAC address. Queueing up on `a`'s own OUTPUT would be simpler but wrong: a held
    packet still counts against the sending socket's buffer (measured: a 10 ms link then capped
    a UDP sender at ~12k packets/s; 212 KB of buffer over 100 ms is 17 Mbit/s), whereas netem
    orphans delayed packets and a real NIC frees them once sent. Only traffic between two
    members of one LAN never reaches `b`'s IP layer (it is bridged); for it `a` queues up on
    `OUTPUT -o a_if -d <LAN>` itself (the gateway excluded, it is reached through `b`).
    The kernel (6.18 here) has no native nft `queue` expression (CONFIG_NFT_QUEUE unset) but
    has xt NFQUEUE, which iptables-nft uses.
  - a link that carries IPv6 (a node of a network with `ip: dual` or `v6`) is impaired in both
    families: the egress chain matches `meta protocol { ip, ip6 }`, and its queues are fed by
    ip6tables too (`queue_rules(family=IPV6)`, the LAN's /64 and gateway). Neighbour discovery
    is left alone in IPv6 as ARP is in IPv4 (never dropped, duplicated or delayed), so
    neighbours stay resolvable.
  - a direction whose delay line is kept through a change during a call although it no longer
    delays (`nfqueue.relink`) stays fed to its queue (`queue_rules(fed=...)`), and its line,
    not the egress chain, keeps deciding its independent loss (`egress_chain(lined=...)`);
    a namespace's queue rules are then rewritten whole in one commit (`flush`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

from simnet.addresses import IPV4, IPV6, Family, IPAddress, IPNetwork, host_network
from simnet.net.impair.shaping import DirectionConfig
from simnet.scenario.model import DIRECTIONS, Direction, Impairment, LinkSpec

NFT_TABLE = "simnet_link"
#: IPv6 neighbour discovery: left alone by every impairment, as ARP is in IPv4
ND_TYPES = ("nd-neighbor-solicit", "nd-neighbor-advert")  # nftables' names
ND_TYPES_XT = ("neighbour-solicitation", "neighbour-advertisement")  # ip6tables' names
#: Multicast group management, IGMP in IPv4 and MLD (ICMPv6 130-132, 143) in IPv6: a router's
#: LAN bridge reports its groups unsolicited for a few seconds after it comes up. Link control
#: as ARP and neighbour discovery are, so the delay lines leave it alone too, and a line's
#: count of released packets is the traffic a probe sent (one 40-byte IGMPv3 report reached
#: a host's down line in 10 of 25 probes started right after a build).
MLD_TYPES_XT = ("130", "131", "132", "143")
DUP_MARK = 0x5D10  # copies made by `dup` carry it, so the egress chain lets them pass unchanged
PPM = 1_000_000  # loss and duplication chances are rendered in parts per million
ETHERNET_HEADER = 14
DEFAULT_MTU = 1500
NETEM_FIFO_RATE = "1000gbit"  # a rate so high it costs nothing, but makes netem keep order


class LinkRecord(TypedDict, total=False):
    """What a backend records of one impaired link in the run's state (beside its settings):
    the userspace delay line's process and log, where it has one."""

    helper_pid: int
    log: str


@dataclass(frozen=True)
class LinkTarget:
    """One impaired link, with the namespaces and interfaces its rules go into."""

    node: str
    a_ns: str
    a_if: str
    b_ns: str
    b_if: str
    spec: LinkSpec
    index: int = 0  # numbers its queues, unique among the run's links
    forwards_from: str | None = None  # a router's LAN: what it forwards out of `a_if`
    b_bridge: str | None = None  # the LAN bridge `b_if` is a port of (None: `b` routes)
    lan: IPNetwork | None = None  # that LAN and its gateway (`b`'s address on it)
    gateway: IPAddress | None = None
    seed: int = 0
    families: frozenset[Family] = frozenset({IPV4})  # what the link carries
    lan6: IPNetwork | None = None  # the LAN's IPv6 /64 and gateway, where it has them
    gateway6: IPAddress | None = None

    def lan_of(self, family: Family) -> tuple[IPNetwork | None, IPAddress | None]:
        """The LAN and gateway of `family` (None, None: the link is no LAN member's)."""
        return (self.lan, self.gateway) if family == IPV4 else (self.lan6, self.gateway6)

    def impairment(self, direction: Direction) -> Impairment:
        return self.spec.direction(direction)

    def queue(self, direction: Direction) -> int:
        """NFQUEUE number of a direction; unique per namespace since unique per run."""
        return 2 * self.index + (0 if direction == "up" else 1)

    def queue_namespaces(self, direction: Direction) -> tuple[str, ...]:
        """Where the direction's queue is fed (see the module's docstring)."""
        if direction == "down":
            return (self.a_ns,)
        return (self.b_ns, self.a_ns) if self.b_bridge else (self.b_ns,)

    def sender(self, direction: Direction) -> tuple[str, str]:
        """(namespace, interface) whose egress carries `direction`."""
        return (self.a_ns, self.a_if) if direction == "up" else (self.b_ns, self.b_if)

    @property
    def mtu(self) -> int:
        return self.spec.mtu or DEFAULT_MTU

    def direction_seed(self, direction: Direction) -> int:
        """Stable per link and direction, so a scenario's seed reproduces the helper's draws."""
        return zlib.crc32(f"{self.seed}/{self.node}/{direction}".encode())


def ppm(pct: float) -> int:
    return round(pct * PPM / 100)


def chance(pct: float) -> str:
    """The nftables condition "with probability `pct` %" (with a trailing space), or nothing
    at 100 %: `numgen random mod 1000000` is below 1000000 every time, and nft rejects the
    comparison with a value outside 0-999999."""
    parts = ppm(pct)
    return "" if parts >= PPM else f"numgen random mod {PPM} < {parts} "


# --- rate (both backends) -----------------------------------------------------------------


def tbf_args(imp: Impairment, mtu: int) -> str:
    """tbf parameters for `imp.rate_kbit`: burst and queue sized from the MTU.

    The burst is two full frames or 1 ms at the rate, whichever is larger: large enough that tbf
    never drops a frame for being bigger than its bucket, small enough that a transfer measured
    over a second sees the rate, not the burst. The queue holds `queue_packets` full frames.
    """
    assert imp.rate_kbit is not None
    frame = mtu + ETHERNET_HEADER
    burst = max(2 * frame, math.ceil(imp.rate_kbit * 1000 / 8 / 1000))
    limit = max(imp.queue_packets * frame, burst)
    return f"tbf rate {imp.rate_kbit}kbit burst {burst} limit {limit}"


# --- netem backend ------------------------------------------------------------------------


def _us(ms: float) -> str:
    return f"{round(ms * 1000)}us"


def netem_args(imp: Impairment) -> str | None:
    """netem parameters for everything but the rate; None if only the rate is impaired."""
    parts = [f"netem limit {imp.queue_packets}"]
    if imp.delay_ms or imp.jitter_ms:
        parts.append(f"delay {_us(imp.delay_ms)}")
        if imp.jitter_ms:
            parts.append(_us(imp.jitter_ms))
            if imp.jitter_distribution != "uniform":
                parts.append(f"distribution {imp.jitter_distribution}")
    if imp.loss_burst is not None:
        b = imp.loss_burst
        parts.append(
            f"loss gemodel {b.p_pct:g}% {b.r_pct:g}% {b.loss_in_bad_pct:g}% {b.loss_in_good_pct:g}%"
        )
    elif imp.loss_pct:
        parts.append(f"loss random {imp.loss_pct:g}%")
    if imp.duplicate_pct:
        parts.append(f"duplicate {imp.duplicate_pct:g}%")
    if imp.jitter_ms and not imp.reorder:
        # netem reorders jittered packets unless it rate-limits, where the last queued packet is
        # the reference point (sch_netem.c): the same FIFO rule as the userspace delay line
        parts.append(f"rate {NETEM_FIFO_RATE}")
    if len(parts) == 1:
        return None
    return " ".join(parts)


def netem_batch(target: LinkTarget, direction: Direction) -> list[str]:
    """`tc -batch` lines for one direction with the netem backend."""
    imp = target.impairment(direction)
    if imp.is_ideal:
        return []
    _, dev = target.sender(direction)
    netem = netem_args(imp)
    tbf = tbf_args(imp, target.mtu) if imp.rate_kbit is not None else None
    if netem is None:
        return [f"qdisc replace dev {dev} root handle 1: {tbf}"] if tbf else []
    lines = [f"qdisc replace dev {dev} root handle 1: {netem}"]
    if tbf:
        lines.append(f"qdisc replace dev {dev} parent 1:1 handle 10: {tbf}")
    return lines


# --- userspace backend --------------------------------------------------------------------


def line_config(target: LinkTarget, direction: Direction) -> DirectionConfig:
    """What the delay line of one direction does; for a direction that does not delay (a line
    kept through a change, see `nfqueue`) that is only its independent loss, if any."""
    imp = target.impairment(direction)
    burst = None
    if imp.loss_burst is not None:
        b = imp.loss_burst
        burst = (b.p_pct / 100, b.r_pct / 100, b.loss_in_bad_pct / 100, b.loss_in_good_pct / 100)
    return DirectionConfig(
        name=f"{target.node}.{direction}",
        queue=target.queue(direction),
        bind_in=target.queue_namespaces(direction),
        delay_s=imp.delay_ms / 1000,
        jitter_s=imp.jitter_ms / 1000,
        distribution=imp.jitter_distribution,
        loss=imp.loss_pct / 100,
        burst=burst,
        reorder=imp.reorder,
        queue_packets=imp.queue_packets,
        seed=target.direction_seed(direction),
    )


def helper_configs(target: LinkTarget) -> list[DirectionConfig]:
    """Directions that need the delay line (delay, jitter or bursty loss)."""
    return [line_config(target, d) for d in DIRECTIONS if target.impairment(d).delays]


def tbf_batch(target: LinkTarget, direction: Direction) -> list[str]:
    imp = target.impairment(direction)
    if imp.rate_kbit is None:
        return []
    _, dev = target.sender(direction)
    return [f"qdisc replace dev {dev} root handle 1: {tbf_args(imp, target.mtu)}"]


def egress_chain(target: LinkTarget, direction: Direction, lined: bool | None = None) -> str:
    """nftables netdev chain for loss (when no delay line runs) and duplication, or ''.

    `lined`: whether the direction's packets go through a delay line, which then decides the
    loss too; by default where the direction delays (a line may also be kept, see `nfqueue`).
    """
    imp = target.impairment(direction)
    _, dev = target.sender(direction)
    if lined is None:
        lined = imp.delays
    rules = []
    if imp.duplicate_pct:
        rules.append(f"meta mark {DUP_MARK:#x} return")
    protocol = "ip" if IPV6 not in target.families else "{ ip, ip6 }"
    if IPV6 in target.families and (imp.duplicate_pct or (imp.loss_pct and not lined)):
        rules.append(f"icmpv6 type {{ {', '.join(ND_TYPES)} }} accept")  # as ARP: untouched
    if imp.loss_pct and not lined:
        rules.append(f"meta protocol {protocol} {chance(imp.loss_pct)}drop")
    if imp.duplicate_pct:
        rules.append(
            f"meta protocol {protocol} {chance(imp.duplicate_pct)}"
            f'meta mark set {DUP_MARK:#x} dup to "{dev}"'
        )
    if not rules:
        return ""
    body = "\n".join(f"    {r}" for r in rules)
    return (
        f"table netdev {NFT_TABLE} {{\n"
        f"  chain egress_{dev} {{\n"
        f'    type filter hook egress device "{dev}" priority 0; policy accept;\n'
        f"{body}\n"
        f"  }}\n"
        f"}}\n"
    )


def queue_rules(
    targets: Sequence[LinkTarget],
    macs: Mapping[str, str],
    fed: Mapping[str, Collection[Direction]] | None = None,
    flush: bool = False,
    family: Family = IPV4,
) -> dict[str, str]:
    """iptables-restore input (`--noflush`) per namespace, feeding the delay lines' queues;
    with `family` IPV6, ip6tables-restore input for the links that carry IPv6.

    `macs` maps a node whose link ends on a LAN bridge to its `a_if` MAC address; `fed` maps a
    node to the directions of its link that go through its delay line (default: those that
    delay). Per namespace, frames arriving from a neighbour come first (an accepted verdict
    ends the chain), then the namespace's own down queue, then its own same-LAN up rules. No
    `--queue-bypass`: with no helper listening the kernel drops (fail closed). `flush`: empty
    the chains first, in the same commit, so the text replaces a namespace's rules atomically
    (simnet owns iptables' raw table in its namespaces).
    """

    def feeds(t: LinkTarget, direction: Direction) -> bool:
        if fed is None:
            return t.impairment(direction).delays
        return direction in fed.get(t.node, ())

    arriving: dict[str, list[str]] = {}
    own: dict[str, list[str]] = {}
    for t in targets:
        if family not in t.families:
            continue
        if feeds(t, "down"):
            own.setdefault(t.a_ns, []).insert(0, f"-A PREROUTING -i {t.a_if} {_jump(t, 'down')}")
        if not feeds(t, "up"):
            continue
        jump = _jump(t, "up")
        if t.b_bridge is None:
            arriving.setdefault(t.b_ns, []).append(f"-A PREROUTING -i {t.b_if} {jump}")
            continue
        mac = macs[t.node]
        arriving.setdefault(t.b_ns, []).append(
            f"-A PREROUTING -i {t.b_bridge} -m mac --mac-source {mac} {jump}"
        )
        lan, gateway = t.lan_of(family)
        assert lan is not None and gateway is not None
        hooks = [f"OUTPUT -o {t.a_if}"]
        if t.forwards_from:
            hooks.append(f"PREROUTING -i {t.forwards_from}")
        for hook in hooks:
            own.setdefault(t.a_ns, []).extend(
                [
                    f"-A {hook} -d {host_network(gateway)} -j RETURN",
                    f"-A {hook} -d {lan} {jump}",
                ]
            )
    # neighbour discovery and group management are left alone, as ARP is (iptables never
    # sees ARP)
    chains = ("PREROUTING", "OUTPUT")
    if family == IPV6:
        spared = [
            f"-A {chain} -p ipv6-icmp --icmpv6-type {kind} -j RETURN"
            for chain in chains
            for kind in (*ND_TYPES_XT, *MLD_TYPES_XT)
        ]
    else:
        spared = [f"-A {chain} -p igmp -j RETURN" for chain in chains]
    out = {}
    for ns in dict.fromkeys([*arriving, *own]):
        lines = spared + arriving.get(ns, []) + own.get(ns, [])
        if flush:
            lines = ["-F PREROUTING", "-F OUTPUT", *lines]
        out[ns] = "*raw\n" + "\n".join(lines) + "\nCOMMIT\n"
    return out


def _jump(target: LinkTarget, direction: Direction) -> str:
    return f"-j NFQUEUE --queue-num {target.queue(direction)}"

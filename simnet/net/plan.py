"""The network plan: which namespaces, links, addresses and routes a scenario becomes.

Pure data, computed from the scenario; the builder applies it. The emulated internet is a core
router with a point-to-point link to every public node (servers, NAT WAN sides, hosts on the
internet). Each public node has one host address (a /32 or a /128) and routes through the core,
which silently drops private and unassigned destinations, as the real internet does (without
that, coturn's relay gets ENETUNREACH and closes the allocation:
docs/kernel-notes.md#core-router-blackholes).

A plan is laid out in one address family, from that family's `Addressing`; every scenario is
planned in IPv4 (`IPV4_ADDRESSING`). Nodes, routes and renderers take addresses of either family,
and a node's `families` are what the builder enables in its namespace.

IPv4 address ranges (RFC 5737 documentation ranges are the "public internet"):
  192.0.2.0/24     the core (192.0.2.1) and servers
  198.51.100.0/24  NAT WAN addresses on the internet
  203.0.113.0/25   hosts directly on the internet
  203.0.113.128/25 LANs of non-translating (`open`) routers, a /28 each
  100.64.0.0/10    LANs of carrier-grade NATs (RFC 6598)
  192.168.0.0/16   LANs of other NATs, unless a scenario sets its own private `lan`

IPv6 address ranges (RFC 3849's 2001:db8::/32 is the "public internet", RFC 4193 unique local
addresses are the private LANs behind NATs), a /64 per LAN:
  2001:db8::/64       the core (2001:db8::1) and servers
  2001:db8:0:1::/64   NAT WAN addresses on the internet
  2001:db8:0:2::/64   hosts directly on the internet
  2001:db8:1::/48     LANs of non-translating (`open`) routers
  fd00:64::/48        LANs of carrier-grade NATs
  fd00:168::/48       LANs of other NATs
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from simnet.addresses import (
    IPV4,
    Family,
    IPAddress,
    IPInterface,
    IPNetwork,
    default_route,
    host_network,
    interface,
)
from simnet.errors import ScenarioError
from simnet.scenario.model import (
    INTERNET,
    FirewallSpec,
    LinkSpec,
    Router,
    Scenario,
    instance_names,
    own_nat_name,
)
from simnet.scenario.nat import NatBehavior, effective_behavior
from simnet.scenario.templates import expand

CORE = INTERNET
CORE_ADDRESS = IPv4Address("192.0.2.1")
SERVER_POOL = IPv4Network("192.0.2.0/24")
NAT_WAN_POOL = IPv4Network("198.51.100.0/24")
HOST_POOL = IPv4Network("203.0.113.0/25")
OPEN_LAN_POOL = IPv4Network("203.0.113.128/25")
CARRIER_LAN_POOL = IPv4Network("100.64.0.0/10")
HOME_LAN_POOL = IPv4Network("192.168.0.0/16")
BOGONS = tuple(
    IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)
FIRST_MEMBER = 10  # LAN members and public nodes are numbered from .10 (gateways sit at .1)


@dataclass(frozen=True)
class Addressing:
    """Where one address family's addresses come from (the module's docstring lists both).

    Public nodes take one address each from their pool; a router's LAN is a subnet of one of
    the LAN pools (of `open_lan_prefix` for a non-translating router, `lan_prefix` for a NAT),
    and its members are numbered from `FIRST_MEMBER` with the gateway first. The core drops
    what is sent to a `bogons` range or to no one, as the real internet does."""

    core: IPAddress
    servers: IPNetwork
    nat_wans: IPNetwork
    hosts: IPNetwork
    open_lans: IPNetwork
    open_lan_prefix: int
    carrier_lans: IPNetwork
    home_lans: IPNetwork
    lan_prefix: int
    bogons: tuple[IPNetwork, ...]

    @property
    def family(self) -> Family:
        return self.core.version


IPV4_ADDRESSING = Addressing(
    core=CORE_ADDRESS,
    servers=SERVER_POOL,
    nat_wans=NAT_WAN_POOL,
    hosts=HOST_POOL,
    open_lans=OPEN_LAN_POOL,
    open_lan_prefix=28,
    carrier_lans=CARRIER_LAN_POOL,
    home_lans=HOME_LAN_POOL,
    lan_prefix=24,
    bogons=BOGONS,
)
IPV6_ADDRESSING = Addressing(
    core=IPv6Address("2001:db8::1"),
    servers=IPv6Network("2001:db8::/64"),
    nat_wans=IPv6Network("2001:db8:0:1::/64"),
    hosts=IPv6Network("2001:db8:0:2::/64"),
    open_lans=IPv6Network("2001:db8:1::/48"),
    open_lan_prefix=64,
    carrier_lans=IPv6Network("fd00:64::/48"),
    home_lans=IPv6Network("fd00:168::/48"),
    lan_prefix=64,
    bogons=(IPv6Network("fc00::/7"),),
)

WAN_IF = "wan"
LAN_IF = "lan"
HOST_IF = "eth0"


class Role(StrEnum):
    CORE = "core"
    ROUTER = "router"
    HOST = "host"
    SERVER = "server"


@dataclass(frozen=True)
class Route:
    """`dst` via `via` on `dev`; `via=None` means on-link; `blackhole` drops silently."""

    dst: IPNetwork
    dev: str | None = None
    via: IPAddress | None = None
    blackhole: bool = False


@dataclass(frozen=True)
class Veth:
    """A cable: interface `a_if` in node `a` to `b_if` in node `b` (enslaved to `b_bridge`)."""

    a: str
    a_if: str
    b: str
    b_if: str
    b_bridge: str | None = None
    link: LinkSpec | None = None  # impairment of this attachment, node `a` being the attached one
    standby: bool = False  # `a_if` stays down, without an address, until a host moves here


@dataclass(frozen=True)
class Attachment:
    """One network a host can sit on: its cable to a router's LAN (or to the core), its address
    there and its default gateway.

    A host that a call's timeline moves gets one per network it moves to, planned with the rest
    (the address comes from the same pool, so an exhausted range is an error before anything is
    built): a second interface (`eth1`, ...) whose cable is already plugged into that LAN's
    bridge but stays down and unaddressed until the move. A phone has a Wi-Fi and a mobile
    interface in the same way; and a cable that exists from the start keeps the build the only
    place veths are made."""

    network: str  # the router it hangs off, or CORE
    veth: Veth
    address: IPInterface
    gateway: IPAddress


@dataclass(frozen=True)
class RouterPlan:
    """What a router translates and filters: its own behaviour, not the chain's."""

    behavior: NatBehavior
    wan_address: IPAddress
    lan: IPNetwork
    firewall: FirewallSpec | None


@dataclass
class Node:
    name: str
    role: Role
    addresses: dict[str, list[IPInterface]] = field(default_factory=dict)
    bridges: list[str] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    router: RouterPlan | None = None
    behind: str | None = None  # the router (or core) this node hangs off

    @property
    def forwarding(self) -> bool:
        return self.role in (Role.CORE, Role.ROUTER)

    @property
    def families(self) -> frozenset[Family]:
        """The address families this node has addresses of: the builder enables these, and
        only these, in its namespace."""
        return frozenset(a.version for addrs in self.addresses.values() for a in addrs)

    @property
    def address(self) -> IPAddress:
        """The node's primary address: its WAN/eth0 address, where others reach it."""
        for ifname in (WAN_IF, HOST_IF):
            if self.addresses.get(ifname):
                return self.addresses[ifname][0].ip
        raise KeyError(f"{self.name} has no primary address")

    def all_addresses(self) -> list[IPAddress]:
        ifname = WAN_IF if WAN_IF in self.addresses else HOST_IF
        return [a.ip for a in self.addresses.get(ifname, [])]


@dataclass
class NetworkPlan:
    scenario: Scenario
    nodes: dict[str, Node]
    veths: list[Veth]
    #: host -> network -> where it sits there, for the hosts a timeline moves (their first
    #: network included), so a move and the move back know both ends
    attachments: dict[str, dict[str, Attachment]] = field(default_factory=dict)

    @property
    def families(self) -> frozenset[Family]:
        """The address families of the whole network."""
        return frozenset(f for node in self.nodes.values() for f in node.families)

    def chain(self, node: str) -> list[str]:
        """Routers between `node` and the internet, innermost first."""
        out = []
        current = self.nodes[node].behind
        while current is not None and current != CORE:
            out.append(current)
            current = self.nodes[current].behind
        return out

    def routers_of(self, node: str) -> list[RouterPlan]:
        """The routers between `node` and the internet, innermost first."""
        return [r for r in (self.nodes[name].router for name in self.chain(node)) if r]

    def expected_behavior(self, node: str) -> NatBehavior:
        """What `node` should observe from the internet through all its routers."""
        return effective_behavior(r.behavior for r in self.routers_of(node))


class _Pool:
    def __init__(
        self, network: IPNetwork, first: int = FIRST_MEMBER, what: str = "", fix: str = ""
    ) -> None:
        self.network = network
        self.first = first
        self.next = first
        self.what = what or str(network)
        self.fix = fix

    def take(self) -> IPAddress:
        if self.next >= self.network.num_addresses - 1:
            room = max(self.network.num_addresses - 1 - self.first, 0)
            first = f".{self.first}" if self.network.version == IPV4 else f"::{self.first:x}"
            raise ScenarioError(
                f"too many {self.what}: {self.network} is exhausted (it holds {room}, "
                f"numbered from {first})",
                fix=self.fix or None,
            )
        address = self.network.network_address + self.next
        self.next += 1
        return address


class _Subnets:
    def __init__(self, pool: IPNetwork, prefix: int, first: int = 0) -> None:
        self.iterator: Iterator[IPNetwork] = iter(pool.subnets(new_prefix=prefix))
        for _ in range(first):
            next(self.iterator)
        self.pool = pool

    def take(self, what: str) -> IPNetwork:
        try:
            return next(self.iterator)
        except StopIteration:
            raise ScenarioError(f"too many {what}: {self.pool} is exhausted") from None


def _own_nats(scenario: Scenario) -> dict[str, tuple[str, str]]:
    """Each NAT an `own_nat` template's instance gets (a name not in the file) -> the template
    and the NAT it copies, so that an error about it names what the file holds."""
    return {
        own_nat_name(instance): (name, host.behind)
        for name, host in scenario.hosts.items()
        if host.own_nat
        for instance in instance_names(name, host.count)
    }


def plan_network(
    scenario: Scenario,
    extra_hosts: dict[str, str] | None = None,
    addressing: Addressing = IPV4_ADDRESSING,
) -> NetworkPlan:
    """Lay out nodes, cables, addresses and routes for `scenario`, with `addressing`'s family.

    `extra_hosts` (name -> behind) adds hosts the caller needs, e.g. NAT probe clients. Host
    templates (`count`, `own_nat`) are written out first (`simnet.scenario.templates`): the
    plan, and its `scenario`, hold every instance by name.
    """
    copied = _own_nats(scenario)
    scenario = expand(scenario)
    nodes: dict[str, Node] = {CORE: Node(CORE, Role.CORE)}
    veths: list[Veth] = []
    core = nodes[CORE]
    core_address = addressing.core
    everywhere = default_route(addressing.family)
    core.routes += [Route(b, blackhole=True) for b in addressing.bogons]
    core.routes.append(Route(everywhere, blackhole=True))
    pools = {
        Role.SERVER: _Pool(addressing.servers, what="servers"),
        Role.ROUTER: _Pool(
            addressing.nat_wans,
            what="NATs on the internet",
            fix="lower the count of the hosts with own_nat (each has a NAT of its own), or "
            "put NATs behind a shared carrier NAT",
        ),
        Role.HOST: _Pool(
            addressing.hosts,
            what="hosts on the internet",
            fix="lower the hosts' count, or put them behind a NAT",
        ),
    }
    open_lans = _Subnets(addressing.open_lans, addressing.open_lan_prefix)
    carrier_lans = _Subnets(addressing.carrier_lans, addressing.lan_prefix)
    home_lans = _Subnets(addressing.home_lans, addressing.lan_prefix, first=1)
    lan_members: dict[str, _Pool] = {}

    def attach(
        name: str,
        role: Role,
        behind: str,
        ifname: str,
        count: int,
        link: LinkSpec | None,
        standby: bool = False,
    ) -> list[IPInterface]:
        """Cable `name` to the core or to router `behind`'s LAN bridge; returns its addresses.

        `link` impairs this cable (applied by `simnet.net.impair` after the build). A `standby`
        cable gets its addresses (returned) but the node does not use it yet: its interface
        has no address and no route until a timeline moves the node onto it."""
        node = nodes[name]
        if not standby:
            node.behind = behind
        if behind == CORE:
            addresses = [pools[role].take() for _ in range(count)]
            core_if = f"p{len(veths)}"
            veths.append(Veth(name, ifname, CORE, core_if, link=link, standby=standby))
            core.addresses[core_if] = [interface(core_address)]
            core.routes += [Route(host_network(a), dev=core_if) for a in addresses]
            interfaces = [interface(a) for a in addresses]
            if not standby:
                node.addresses[ifname] = interfaces
                node.routes += [
                    Route(host_network(core_address), dev=ifname),
                    Route(everywhere, dev=ifname, via=core_address),
                ]
            return interfaces
        parent = nodes[behind]
        assert parent.router is not None
        lan = parent.router.lan
        addresses = [lan_members[behind].take() for _ in range(count)]
        port = f"l{len(veths)}"
        veths.append(Veth(name, ifname, behind, port, b_bridge=LAN_IF, link=link, standby=standby))
        interfaces = [interface(a, lan.prefixlen) for a in addresses]
        if not standby:
            node.addresses[ifname] = interfaces
            node.routes.append(Route(everywhere, dev=ifname, via=lan.network_address + 1))
        return interfaces

    for router in scenario.routers():
        nodes[router.name] = Node(router.name, Role.ROUTER)
        wan = attach(router.name, Role.ROUTER, router.behind, WAN_IF, 1, router.link)[0].ip
        lan = router.lan or _default_lan(router, open_lans, carrier_lans, home_lans)
        _check_family(router, lan, addressing)
        _check_nesting(router, lan, nodes)
        node = nodes[router.name]
        node.router = RouterPlan(router.behavior, wan, lan, router.firewall)
        node.bridges.append(LAN_IF)
        node.addresses[LAN_IF] = [interface(lan.network_address + 1, lan.prefixlen)]
        if router.name in copied:  # a NAT of a host's own: name what is in the file
            template, original = copied[router.name]
            lan_members[router.name] = _Pool(
                lan,
                what=f"hosts behind the NAT of their own of hosts.{template} (own_nat: a copy "
                f"of nats.{original}, lan {lan})",
                fix=f"give nats.{original}.lan a larger private range (e.g. 10.20.0.0/16)",
            )
        else:
            lan_members[router.name] = _Pool(
                lan,
                what=f"hosts behind {router.name}",
                fix=f"lower the count of the hosts behind {router.name}, or give its `lan:` a "
                "larger private range (e.g. 10.20.0.0/16)",
            )
        if not router.behavior.translates:
            _route_public_lan(nodes, lan, router.behind, wan)

    for name, server in scenario.servers.items():
        nodes[name] = Node(name, Role.SERVER)
        attach(name, Role.SERVER, CORE, HOST_IF, server.addresses, server.link)
    hosts = {n: (h.behind, h.link) for n, h in scenario.hosts.items()}
    hosts.update({n: (behind, None) for n, behind in (extra_hosts or {}).items()})
    for name, (behind, link) in hosts.items():
        nodes[name] = Node(name, Role.HOST)
        attach(name, Role.HOST, behind if behind != INTERNET else CORE, HOST_IF, 1, link)
    attachments: dict[str, dict[str, Attachment]] = {}
    for host, network in _moves(scenario):
        where = network if network != INTERNET else CORE
        known = attachments.setdefault(host, {})
        if not known:
            known[nodes[host].behind or CORE] = _attachment_of(nodes, veths, host)
        if where in known:
            continue  # moving back: the host's interface and address there are kept
        ifname = f"eth{len(known)}"
        address = attach(host, Role.HOST, where, ifname, 1, None, standby=True)[0]
        gateway = core_address if where == CORE else address.network.network_address + 1
        known[where] = Attachment(where, veths[-1], address, gateway)
    return NetworkPlan(scenario, nodes, veths, attachments)


def _moves(scenario: Scenario) -> list[tuple[str, str]]:
    """(host, network) of every `move` of the scenario's call, in time order."""
    if scenario.call is None:
        return []
    return [
        (event.target, event.to)
        for event in scenario.call.ordered_timeline
        if event.action == "move" and event.target is not None and event.to is not None
    ]


def _attachment_of(nodes: dict[str, Node], veths: list[Veth], host: str) -> Attachment:
    """Where `host` sits as built."""
    veth = next(v for v in veths if v.a == host)
    address = nodes[host].addresses[veth.a_if][0]
    gateway = next(r.via for r in nodes[host].routes if r.via is not None)
    return Attachment(veth.b, veth, address, gateway)


def _route_public_lan(
    nodes: dict[str, Node], lan: IPNetwork, upstream: str, via: IPAddress
) -> None:
    """An `open` router's LAN is public: every router up to the core or to the first NAT
    (which hides it anyway) needs a route to it."""
    while True:
        nodes[upstream].routes.append(Route(lan, via=via))
        parent = nodes[upstream].router
        if upstream == CORE or parent is None or parent.behavior.translates:
            return
        via = parent.wan_address
        upstream = nodes[upstream].behind or CORE


def _default_lan(
    router: Router, open_lans: _Subnets, carrier_lans: _Subnets, home_lans: _Subnets
) -> IPNetwork:
    if not router.behavior.translates:
        return open_lans.take("open routers")
    if router.carrier:
        return carrier_lans.take("carrier NATs")
    return home_lans.take("NAT LANs")


def _check_family(router: Router, lan: IPNetwork, addressing: Addressing) -> None:
    """A LAN of the other family than the plan's cannot be routed in it."""
    if lan.version != addressing.family:
        raise ScenarioError(
            f"nats.{router.name}.lan: {lan} is an IPv{lan.version} range, but the network is "
            f"planned in IPv{addressing.family}",
            fix=f"give nats.{router.name}.lan an IPv{addressing.family} range",
        )


def _check_nesting(router: Router, lan: IPNetwork, nodes: dict[str, Node]) -> None:
    current = router.behind
    while current != CORE:
        parent = nodes[current].router
        assert parent is not None
        if lan.overlaps(parent.lan):
            raise ScenarioError(
                f"nats.{router.name}.lan: {lan} overlaps the LAN {parent.lan} of {current}, "
                "which it sits behind",
                fix=f"give nats.{router.name}.lan another private range",
            )
        current = nodes[current].behind or CORE

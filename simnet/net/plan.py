"""The network plan: which namespaces, links, addresses and routes a scenario becomes.

Pure data, computed from the scenario; the builder applies it. The emulated internet is a core
router with a point-to-point link to every public node (servers, NAT WAN sides, hosts on the
internet). Each public node has one host address per family (a /32, a /128) and routes through
the core, which silently drops private and unassigned destinations, as the real internet does
(without that, coturn's relay gets ENETUNREACH and closes the allocation:
docs/kernel-notes.md#core-router-blackholes).

One plan holds both families, each laid out from its own `Addressing`. A node's `families` are
those it has addresses of, and what the builder enables in its namespace: a network's hosts get
its `ip:` (v4, dual, v6), public nodes get what the internet carries (IPv6 too as soon as a NAT
or a server asks for it), a router's WAN what its LAN needs (and IPv4 for a NAT64). A scenario
without a family knob is planned in IPv4 alone, exactly as before families existed.

IPv4 address ranges (RFC 5737 documentation ranges are the "public internet"):
  192.0.2.0/24     the core (192.0.2.1) and servers
  198.51.100.0/24  NAT WAN addresses on the internet
  203.0.113.0/25   hosts directly on the internet
  203.0.113.128/25 LANs of non-translating (`open`) routers, a /28 each
  100.64.0.0/10    LANs of carrier-grade NATs (RFC 6598); NAT64 pools from 100.127.255.0/24 down
  192.168.0.0/16   LANs of other NATs, unless a scenario sets its own private `lan`

IPv6 address ranges, all inside RFC 3849's 2001:db8::/32, a global /64 per LAN. IPv6 is never
translated, so every LAN's /64 is routed by each router above it and by the core:
  2001:db8::/64       the core (2001:db8::1) and servers
  2001:db8:0:1::/64   NAT WAN addresses on the internet
  2001:db8:0:2::/64   hosts directly on the internet
  2001:db8:1::/48     LANs of `open` routers
  2001:db8:2::/48     LANs of carriers (`cgn`, the carrier of `cgnat`, a NAT64 carrier)
  2001:db8:3::/48     LANs of other routers (homes), unless a scenario sets its own `lan6`
  2001:db8:64:N::/96  the NAT64 prefix of the N-th NAT64 carrier, handled in that router

The DNS zone server listens on the core's own addresses (`RESOLVER_NODE`, 192.0.2.1 and
2001:db8::1): every public node already has an on-link route to them, and no extra node or
name is needed. Each node's `resolvers` are those addresses in its families, or the DNS64
resolver of the NAT64 carrier it sits behind (that carrier's LAN gateway address).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from simnet.addresses import (
    IPV4,
    IPV6,
    Family,
    IPAddress,
    IPInterface,
    IPNetwork,
    default_route,
    host_network,
    interface,
)
from simnet.errors import ScenarioError
from simnet.scenario.family import V6Filtering, strictest
from simnet.scenario.model import (
    INTERNET,
    PROXY_PORT,
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
    carrier_lans=IPv6Network("2001:db8:2::/48"),
    home_lans=IPv6Network("2001:db8:3::/48"),
    lan_prefix=64,
    bogons=(IPv6Network("fc00::/7"),),
)
ADDRESSING: dict[Family, Addressing] = {IPV4: IPV4_ADDRESSING, IPV6: IPV6_ADDRESSING}
NAT64_PREFIXES = IPv6Network("2001:db8:64::/48")  # the N-th NAT64 carrier: 2001:db8:64:N::/96
NAT64_PREFIX_LEN = 96
NAT64_POOL_TOP = IPv4Network("100.127.255.0/24")  # the N-th NAT64 pool: N /24s below this
RESOLVER_NODE = CORE  # the zone server listens on the core's own addresses

WAN_IF = "wan"
LAN_IF = "lan"
HOST_IF = "eth0"
NAT64_IF = "nat64"  # a NAT64 carrier's TUN device, tayga's (`simnet.net.nat64`)


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
    """What a router translates and filters: its own behaviour, not the chain's.

    `behavior` is its IPv4 translation (a plain router's for an IPv6-only network without a
    NAT64; a NAT64's IPv4 side for one with). `wan_address` and `lan` are the primary ones:
    IPv4 where the router has them, else IPv6; `wan6` and `lan6` are its IPv6 WAN address and
    LAN /64 (None in an IPv4-only network). The IPv6 side never translates: it forwards, and
    filters unsolicited inbound packets as `v6_filtering` says. `blackholed` families are
    dropped silently on their way out of the LAN. A NAT64 carrier translates `nat64_prefix`
    (a /96) to IPv4 through its `nat64_pool`, which `behavior` then translates to `wan_address`.
    """

    behavior: NatBehavior
    wan_address: IPAddress
    lan: IPNetwork
    firewall: FirewallSpec | None
    wan6: IPv6Address | None = None
    lan6: IPv6Network | None = None
    v6_filtering: V6Filtering = V6Filtering.APDF
    blackholed: frozenset[Family] = frozenset()
    nat64_prefix: IPv6Network | None = None
    nat64_pool: IPv4Network | None = None
    # `firewall.proxy_only`'s proxy: its addresses and port, the LAN's one way out
    proxy: tuple[tuple[IPAddress, ...], int] | None = None

    @property
    def families(self) -> frozenset[Family]:
        """The families of its LAN: what its users get."""
        return frozenset(n.version for n in (self.lan, self.lan6) if n is not None)

    @property
    def lan4(self) -> IPv4Network | None:
        return self.lan if isinstance(self.lan, IPv4Network) else None

    @property
    def wan4(self) -> IPv4Address | None:
        return self.wan_address if isinstance(self.wan_address, IPv4Address) else None

    @property
    def dns64(self) -> IPv6Address | None:
        """Where a NAT64 carrier's DNS64 resolver listens: its LAN gateway address."""
        if self.nat64_prefix is None or self.lan6 is None:
            return None
        return self.lan6.network_address + 1


@dataclass
class Node:
    name: str
    role: Role
    addresses: dict[str, list[IPInterface]] = field(default_factory=dict)
    bridges: list[str] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    router: RouterPlan | None = None
    behind: str | None = None  # the router (or core) this node hangs off
    #: the DNS resolvers the node uses, in order (`RESOLVER_NODE`'s, or a NAT64's DNS64)
    resolvers: tuple[IPAddress, ...] = ()

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

    def all_addresses(self, family: Family | None = None) -> list[IPAddress]:
        """The addresses of its WAN/eth0 (IPv4 ones first), or of one `family`."""
        ifname = WAN_IF if WAN_IF in self.addresses else HOST_IF
        return [
            a.ip for a in self.addresses.get(ifname, []) if family is None or a.version == family
        ]

    def address_of(self, family: Family) -> IPAddress | None:
        """Its primary address of `family`, if it has one."""
        found = self.all_addresses(family)
        return found[0] if found else None

    @property
    def resolver(self) -> IPAddress | None:
        """Its first DNS resolver."""
        return self.resolvers[0] if self.resolvers else None


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

    def expected_v6(self, node: str) -> tuple[V6Filtering, int | None]:
        """What `node` should observe in IPv6 through all its routers: the strictest of their
        filterings, and the shortest binding timeout of those that filter (None: none does,
        nothing expires)."""
        routers = [r for r in self.routers_of(node) if r.lan6 is not None]
        filtering = strictest(r.v6_filtering for r in routers)
        filtering_ones = [r for r in routers if r.v6_filtering is not V6Filtering.OPEN]
        return filtering, min((r.behavior.udp_timeout_s for r in filtering_ones), default=None)

    def blackholed(self, node: str) -> frozenset[Family]:
        """The families a router between `node` and the internet drops silently."""
        return frozenset(f for r in self.routers_of(node) for f in r.blackholed)


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
    def __init__(
        self, pool: IPNetwork, prefix: int, first: int = 0, taken: tuple[IPNetwork, ...] = ()
    ) -> None:
        self.iterator: Iterator[IPNetwork] = iter(pool.subnets(new_prefix=prefix))
        for _ in range(first):
            next(self.iterator)
        self.pool = pool
        self.taken = taken  # ranges a scenario gave itself: never handed out

    def take(self, what: str) -> IPNetwork:
        for subnet in self.iterator:
            if not any(subnet.overlaps(t) for t in self.taken if t.version == subnet.version):
                return subnet
        raise ScenarioError(f"too many {what}: {self.pool} is exhausted")


class _Layout:
    """One family's pools: public addresses per role, LAN ranges per kind of router."""

    def __init__(self, addressing: Addressing, taken: tuple[IPNetwork, ...]) -> None:
        self.pools = {
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
        self.open_lans = _Subnets(addressing.open_lans, addressing.open_lan_prefix, taken=taken)
        self.carrier_lans = _Subnets(addressing.carrier_lans, addressing.lan_prefix, taken=taken)
        self.home_lans = _Subnets(addressing.home_lans, addressing.lan_prefix, 1, taken=taken)

    def lan(self, router: Router) -> IPNetwork:
        """A LAN for `router`: an open router's, a carrier's or a home's."""
        if router.open:
            return self.open_lans.take("open routers")
        if router.carrier:
            return self.carrier_lans.take("carrier NATs")
        return self.home_lans.take("NAT LANs")


def _own_nats(scenario: Scenario) -> dict[str, tuple[str, str]]:
    """Each NAT an `own_nat` template's instance gets (a name not in the file) -> the template
    and the NAT it copies, so that an error about it names what the file holds."""
    return {
        own_nat_name(instance): (name, host.behind)
        for name, host in scenario.hosts.items()
        if host.own_nat
        for instance in instance_names(name, host.count)
    }


def plan_network(scenario: Scenario, extra_hosts: dict[str, str] | None = None) -> NetworkPlan:
    """Lay out nodes, cables, addresses and routes for `scenario`, in every family it has.

    `extra_hosts` (name -> behind) adds hosts the caller needs, e.g. NAT probe clients. Host
    templates (`count`, `own_nat`) are written out first (`simnet.scenario.templates`): the
    plan, and its `scenario`, hold every instance by name.
    """
    copied = _own_nats(scenario)
    scenario = expand(scenario)
    internet = scenario.internet_families
    nodes: dict[str, Node] = {CORE: Node(CORE, Role.CORE)}
    veths: list[Veth] = []
    core = nodes[CORE]
    user_lan6s = tuple(r.lan6 for r in scenario.routers() if r.lan6 is not None)
    layouts = {f: _Layout(ADDRESSING[f], user_lan6s) for f in sorted(internet)}
    for family in sorted(internet):
        core.routes += [Route(b, blackhole=True) for b in ADDRESSING[family].bogons]
        core.routes.append(Route(default_route(family), blackhole=True))
    lan_members: dict[tuple[str, Family], _Pool] = {}
    lan6_owner: dict[IPNetwork, str] = {}

    def attach(
        name: str,
        role: Role,
        behind: str,
        ifname: str,
        count: int,
        link: LinkSpec | None,
        families: frozenset[Family],
        standby: bool = False,
    ) -> list[IPInterface]:
        """Cable `name` to the core or to router `behind`'s LAN bridge; returns its addresses
        (`count` per family, IPv4 first).

        `link` impairs this cable (applied by `simnet.net.impair` after the build). A `standby`
        cable gets its addresses (returned) but the node does not use it yet: its interface
        has no address and no route until a timeline moves the node onto it."""
        node = nodes[name]
        if not standby:
            node.behind = behind
        interfaces: list[IPInterface] = []
        routes: list[Route] = []
        if behind == CORE:
            core_if = f"p{len(veths)}"
            veths.append(Veth(name, ifname, CORE, core_if, link=link, standby=standby))
            for family in sorted(families):
                core_address = ADDRESSING[family].core
                addresses = [layouts[family].pools[role].take() for _ in range(count)]
                core.addresses.setdefault(core_if, []).append(interface(core_address))
                core.routes += [Route(host_network(a), dev=core_if) for a in addresses]
                interfaces += [interface(a) for a in addresses]
                routes += [
                    Route(host_network(core_address), dev=ifname),
                    Route(default_route(family), dev=ifname, via=core_address),
                ]
        else:
            port = f"l{len(veths)}"
            veths.append(
                Veth(name, ifname, behind, port, b_bridge=LAN_IF, link=link, standby=standby)
            )
            for family in sorted(families):
                members = lan_members[(behind, family)]
                addresses = [members.take() for _ in range(count)]
                interfaces += [interface(a, members.network.prefixlen) for a in addresses]
                gateway = members.network.network_address + 1
                routes.append(Route(default_route(family), dev=ifname, via=gateway))
        if not standby:
            node.addresses[ifname] = interfaces
            node.routes += routes
        return interfaces

    nat64s = 0
    for router in scenario.routers():
        nodes[router.name] = node = Node(router.name, Role.ROUTER)
        wan = attach(
            router.name, Role.ROUTER, router.behind, WAN_IF, 1, router.link, router.wan_families
        )
        wans = {a.version: a.ip for a in wan}
        lans: dict[Family, IPNetwork] = {}
        if IPV4 in router.families:
            lans[IPV4] = router.lan or layouts[IPV4].lan(router)
            _check_nesting(router, lans[IPV4], nodes)
        if IPV6 in router.families:
            lans[IPV6] = router.lan6 or layouts[IPV6].lan(router)
            _check_lan6_unique(router, lans[IPV6], lan6_owner, copied)
        prefix, pool = None, None
        if router.nat64:
            prefix, pool = _nat64_prefix(nat64s), _nat64_pool(nat64s)
            nat64s += 1
        lan6, wan6 = lans.get(IPV6), wans.get(IPV6)
        assert isinstance(lan6, IPv6Network | None) and isinstance(wan6, IPv6Address | None)
        node.router = RouterPlan(
            router.behavior,
            wans.get(IPV4) or wans[IPV6],
            lans.get(IPV4) or lans[IPV6],
            router.firewall,
            wan6=wan6,
            lan6=lan6,
            v6_filtering=router.v6_filtering,
            blackholed=router.blackholed,
            nat64_prefix=prefix,
            nat64_pool=pool,
        )
        node.bridges.append(LAN_IF)
        node.addresses[LAN_IF] = [
            interface(lan.network_address + 1, lan.prefixlen) for lan in lans.values()
        ]
        for family, lan in lans.items():
            lan_members[(router.name, family)] = _members(router, lan, copied)
        if IPV4 in lans and not router.behavior.translates:
            _route_public_lan(nodes, lans[IPV4], router.behind, wans[IPV4])
        if lan6 is not None and wan6 is not None:
            _route_lan6(nodes, lan6, router.behind, wan6)

    for name, server in scenario.servers.items():
        nodes[name] = Node(name, Role.SERVER)
        families = server.families_in(internet)
        attach(name, Role.SERVER, CORE, HOST_IF, server.addresses, server.link, families)
    _resolve_proxies(nodes)
    hosts = {n: (h.behind, h.link) for n, h in scenario.hosts.items()}
    hosts.update({n: (behind, None) for n, behind in (extra_hosts or {}).items()})
    for name, (behind, link) in hosts.items():
        nodes[name] = Node(name, Role.HOST)
        where = behind if behind != INTERNET else CORE
        attach(name, Role.HOST, where, HOST_IF, 1, link, _families_at(nodes, where, internet))
    attachments: dict[str, dict[str, Attachment]] = {}
    for host, network in _moves(scenario):
        where = network if network != INTERNET else CORE
        known = attachments.setdefault(host, {})
        if not known:
            known[nodes[host].behind or CORE] = _attachment_of(nodes, veths, host)
        if where in known:
            continue  # moving back: the host's interface and address there are kept
        ifname = f"eth{len(known)}"
        families = _families_at(nodes, where, internet)
        address = attach(host, Role.HOST, where, ifname, 1, None, families, standby=True)[0]
        gateway = IPV4_ADDRESSING.core if where == CORE else address.network.network_address + 1
        known[where] = Attachment(where, veths[-1], address, gateway)
    plan = NetworkPlan(scenario, nodes, veths, attachments)
    for name, node in nodes.items():
        if name != CORE:
            node.resolvers = _resolvers(plan, name)
    return plan


def _resolve_proxies(nodes: dict[str, Node]) -> None:
    """Give each router whose firewall is `proxy_only` its proxy's addresses and port (the
    servers are placed after the routers)."""
    for node in nodes.values():
        router = node.router
        if router is None or router.firewall is None or router.firewall.proxy_only is None:
            continue
        proxy = nodes[router.firewall.proxy_only]
        node.router = replace(router, proxy=(tuple(proxy.all_addresses()), PROXY_PORT))


def _families_at(
    nodes: dict[str, Node], where: str, internet: frozenset[Family]
) -> frozenset[Family]:
    """The families a node attached at `where` (a router's LAN, or the core) gets."""
    router = nodes[where].router
    return router.families if router is not None else internet


def _members(router: Router, lan: IPNetwork, copied: dict[str, tuple[str, str]]) -> _Pool:
    """The pool of `lan`'s member addresses, whose exhaustion names what the file holds."""
    if router.name in copied:  # a NAT of a host's own: name what is in the file
        template, original = copied[router.name]
        return _Pool(
            lan,
            what=f"hosts behind the NAT of their own of hosts.{template} (own_nat: a copy "
            f"of nats.{original}, lan {lan})",
            fix=f"give nats.{original}.lan a larger private range (e.g. 10.20.0.0/16)",
        )
    return _Pool(
        lan,
        what=f"hosts behind {router.name}",
        fix=f"lower the count of the hosts behind {router.name}, or give its `lan:` a "
        "larger private range (e.g. 10.20.0.0/16)",
    )


def _nat64_prefix(n: int) -> IPv6Network:
    """The N-th NAT64 carrier's /96: 2001:db8:64:N::/96."""
    base = int(NAT64_PREFIXES.network_address) + (n << 64)
    return IPv6Network((base, NAT64_PREFIX_LEN))


def _nat64_pool(n: int) -> IPv4Network:
    """The N-th NAT64 carrier's IPv4 pool: the N-th /24 down from 100.127.255.0/24."""
    top = NAT64_POOL_TOP
    return IPv4Network((int(top.network_address) - n * top.num_addresses, top.prefixlen))


def _resolvers(plan: NetworkPlan, name: str) -> tuple[IPAddress, ...]:
    """`name`'s DNS resolvers: the DNS64 of the NAT64 carrier it sits behind, else the zone
    server's addresses in its families (IPv4 first, so a dual node with IPv6 black-holed
    still resolves at the first try)."""
    for router in plan.routers_of(name):
        if router.dns64 is not None:
            return (router.dns64,)
    return tuple(ADDRESSING[f].core for f in sorted(plan.nodes[name].families))


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


def _route_lan6(nodes: dict[str, Node], lan6: IPNetwork, upstream: str, via: IPAddress) -> None:
    """IPv6 is never translated: every router up to the core, and the core, route `lan6`."""
    while True:
        nodes[upstream].routes.append(Route(lan6, via=via))
        parent = nodes[upstream].router
        if upstream == CORE or parent is None or parent.wan6 is None:
            return
        via = parent.wan6
        upstream = nodes[upstream].behind or CORE


def _check_lan6_unique(
    router: Router, lan6: IPNetwork, owner: dict[IPNetwork, str], copied: dict[str, tuple[str, str]]
) -> None:
    """Two LANs cannot share a routed /64; only `own_nat` copies of one `lan6` can try."""
    if lan6 in owner and router.name in copied:
        template, original = copied[router.name]
        raise ScenarioError(
            f"hosts.{template}: own_nat gives each host a copy of nats.{original}, but its "
            f"lan6 {lan6} is a routed /64 that only one network can have",
            fix=f"remove nats.{original}.lan6: each copy then gets its own /64",
        )
    owner[lan6] = router.name


def _check_nesting(router: Router, lan: IPNetwork, nodes: dict[str, Node]) -> None:
    current = router.behind
    while current != CORE:
        parent = nodes[current].router
        assert parent is not None
        if parent.lan.version == lan.version and lan.overlaps(parent.lan):
            raise ScenarioError(
                f"nats.{router.name}.lan: {lan} overlaps the LAN {parent.lan} of {current}, "
                "which it sits behind",
                fix=f"give nats.{router.name}.lan another private range",
            )
        current = nodes[current].behind or CORE

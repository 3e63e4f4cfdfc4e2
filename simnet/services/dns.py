"""Names in the emulated internet: a zone server for `simnet.test` and DNS64 resolvers.

Two kinds of unbound, each a managed process of the run in a namespace of the emulated network:

- **The zone server** answers for `simnet.test` from local data: an A record per IPv4 address
  and an AAAA record per IPv6 address of every server (`<server>.simnet.test`). Every other
  name is NXDOMAIN at once (`local-zone: "." static`): there is no root and no internet, so
  nothing is ever forwarded out, and a lookup of a name from outside fails fast instead of
  timing out.
- **A DNS64 resolver** (RFC 6147) in each NAT64 carrier forwards every question to the zone
  server and, for a name with A records but no AAAA record, synthesizes AAAA records in the
  carrier's NAT64 prefix (unbound's `dns64` module; a name that has AAAA records keeps them).
  unbound serves `test.` itself by default (RFC 6761: NXDOMAIN for everything in it), so the
  resolver turns that off (`local-zone: "test." nodefault`) to ask the zone server.

Both are unbound for one reason: one program, one configuration language, one readiness check.
Configurations are rendered by pure functions (`render_zone`, `render_dns64`) and written to
the run's work directory; unbound runs in the foreground (`-d`), logging to stderr, without
chroot, user switch, pid file, control socket or trust anchor, so nothing outside the run's
files and namespace is touched.

Readiness is a real answer: a query for the zone's apex (`simnet.test`; any reply counts, an
empty one too) sent from inside the namespace, repeated until unbound answers it.

Each host sees its resolver in /etc/resolv.conf through `simnet.net.resolv` (`Node.resolver`).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Network

import dns.exception
import dns.message
import dns.rdatatype

from simnet.addresses import IPV4, IPV6, IPAddress, socket_family
from simnet.errors import SimnetError
from simnet.net import netns, resolv
from simnet.net.builder import Network
from simnet.net.plan import ADDRESSING, RESOLVER_NODE, NetworkPlan, Role
from simnet.net.process import ManagedProcess, start_logged
from simnet.net.registry import Run

UNBOUND = "unbound"
INSTALL_FIX = "run ./setup.sh (apt-get install unbound)"
ZONE = "simnet.test"
TTL_S = 60
DNS_PORT = 53
READY_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 0.2


def server_name(server: str) -> str:
    """The name a server has in the zone: `<server>.simnet.test`."""
    return f"{server}.{ZONE}"


def _common(listen: Sequence[IPAddress]) -> list[str]:
    """The server options both kinds share: foreground, no privileges dropped, no pid file,
    answering anyone (the emulated network is closed). The working directory is the run's,
    added by `start_unbound`."""
    lines = [
        "server:",
        '  chroot: ""',
        '  username: ""',
        '  pidfile: ""',
        "  do-daemonize: no",
        "  use-syslog: no",
        '  logfile: ""',
        "  verbosity: 1",
        f"  port: {DNS_PORT}",
        f"  do-ip4: {'yes' if any(a.version == IPV4 for a in listen) else 'no'}",
        f"  do-ip6: {'yes' if any(a.version != IPV4 for a in listen) else 'no'}",
        "  access-control: 0.0.0.0/0 allow",
        "  access-control: ::/0 allow",
    ]
    lines += [f"  interface: {address}" for address in listen]
    return lines


_REMOTE_CONTROL = ["remote-control:", "  control-enable: no"]


def render_zone(listen: Sequence[IPAddress], records: Mapping[str, Sequence[IPAddress]]) -> str:
    """The zone server's unbound.conf: `records` (a name in the zone -> its addresses) as A and
    AAAA records, every other name NXDOMAIN."""
    lines = [
        *_common(listen),
        '  module-config: "iterator"',
        '  local-zone: "." static',  # nothing outside the zone, and no root to ask
        f'  local-zone: "{ZONE}." static',
    ]
    for name, addresses in records.items():
        for address in addresses:
            kind = "A" if address.version == IPV4 else "AAAA"
            lines.append(f'  local-data: "{name}. {TTL_S} IN {kind} {address}"')
    return "\n".join([*lines, *_REMOTE_CONTROL]) + "\n"


def render_dns64(
    listen: Sequence[IPAddress], prefix: IPv6Network, upstream: Sequence[IPAddress]
) -> str:
    """A DNS64 resolver's unbound.conf: every question forwarded to `upstream` (the zone
    server), AAAA records synthesized in `prefix` for names that have only A records."""
    lines = [
        *_common(listen),
        '  module-config: "dns64 iterator"',
        f"  dns64-prefix: {prefix}",
        f'  local-zone: "{ZONE.rsplit(".", 1)[-1]}." nodefault',  # unbound's own RFC 6761 zone
        "forward-zone:",
        '  name: "."',
        *(f"  forward-addr: {address}" for address in upstream),
    ]
    return "\n".join([*lines, *_REMOTE_CONTROL]) + "\n"


def query(
    ns: str, server: IPAddress, name: str, rdtype: str, timeout_s: float = PROBE_TIMEOUT_S
) -> dns.message.Message | None:
    """Ask `server` (from inside namespace `ns`) for `name`'s `rdtype` records over UDP; the
    reply, or None if none came within `timeout_s` (or the port was closed)."""
    sock = netns.socket_in(ns, socket_family(server), socket.SOCK_DGRAM)
    try:
        sock.settimeout(timeout_s)
        request = dns.message.make_query(name, dns.rdatatype.from_text(rdtype))
        # connected, so that a port nobody listens on yet is refused at once (ICMP port
        # unreachable reaches a connected socket only), instead of costing the whole timeout
        sock.connect((str(server), DNS_PORT))
        sock.send(request.to_wire())
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            data = sock.recv(65535)
            try:
                reply = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            if reply.id == request.id:
                return reply
        return None
    except OSError:  # a timeout, or ICMP port unreachable before unbound listens
        return None
    finally:
        sock.close()


def answers(reply: dns.message.Message | None) -> list[str]:
    """The addresses in `reply`'s answer section (empty for none)."""
    if reply is None:
        return []
    return [
        item.to_text()
        for rrset in reply.answer
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        for item in rrset
    ]


@dataclass
class Unbound:
    """A running unbound: `kind` ("zone" or "dns64"), where, and its process."""

    kind: str
    node: str
    ns: str
    addresses: tuple[IPAddress, ...]
    process: ManagedProcess
    started_t: float  # time.monotonic() before the fork
    ready_s: float | None = None  # from the fork to its first answer

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Return once it answers a query on its first address (any answer: a DNS64 whose
        zone server is not up yet says SERVFAIL, and is listening); stop it on failure."""
        first = self.addresses[0]
        try:
            self.process.wait_until(
                lambda: query(self.ns, first, ZONE, "A") is not None,
                f"answering DNS on {first}",
                timeout_s=timeout_s,
            )
        except BaseException:
            self.process.stop()
            raise
        self.ready_s = time.monotonic() - self.started_t

    def stop(self) -> None:
        self.process.stop()


def launch_unbound(
    run: Run, kind: str, node: str, ns: str, config: str, addresses: Sequence[IPAddress]
) -> Unbound:
    """Start unbound with `config` (rendered for `addresses`) in namespace `ns`, registered
    with `run`, without waiting for it (`Unbound.wait_ready`)."""
    if not addresses:
        raise SimnetError(f"unbound ({kind}) in {node} has no address to listen on")
    workdir = run.workdir / f"unbound-{kind}-{node}"
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "unbound.conf"
    path.write_text(f'server:\n  directory: "{workdir}"\n{config}')
    log = workdir / "unbound.log"
    started = time.monotonic()
    process = start_logged(
        run,
        f"unbound-{kind}-{node}",
        [UNBOUND, "-d", "-c", str(path)],
        ns=ns,
        log=log,
        missing="unbound is not installed",
        fix=INSTALL_FIX,
    )
    return Unbound(kind, node, ns, tuple(addresses), process, started)


def start_unbound(
    run: Run,
    kind: str,
    node: str,
    ns: str,
    config: str,
    addresses: Sequence[IPAddress],
    *,
    timeout_s: float = READY_TIMEOUT_S,
) -> Unbound:
    """`launch_unbound`, returning once it answers on its first address."""
    server = launch_unbound(run, kind, node, ns, config, addresses)
    server.wait_ready(timeout_s)
    return server


@dataclass(frozen=True)
class Dns64Site:
    """Where one DNS64 resolver runs: router `node`'s namespace `ns`, listening on `listen`
    (its LAN gateway address), synthesizing in `prefix`, asking `upstream` (the zone server)."""

    node: str
    ns: str
    listen: IPAddress
    prefix: IPv6Network
    upstream: tuple[IPAddress, ...]


@dataclass
class DnsServices:
    """The zone server and the DNS64 resolvers of one network; the run kills them at teardown
    anyway, `stop` ends them earlier."""

    zone: Unbound | None = None
    dns64: dict[str, Unbound] = field(default_factory=dict)

    def stop(self) -> None:
        for server in [*self.dns64.values(), *([self.zone] if self.zone else [])]:
            server.stop()


def start_dns(
    run: Run,
    zone_node: str,
    zone_ns: str,
    zone_listen: Sequence[IPAddress],
    records: Mapping[str, Sequence[IPAddress]],
    sites: Sequence[Dns64Site] = (),
    resolvers: Mapping[str, Sequence[IPAddress]] | None = None,
) -> DnsServices:
    """Start the zone server (`records` on `zone_listen`, in `zone_ns`), then a DNS64 resolver
    per site, each ready when it answers; then give each namespace of `resolvers` (namespace ->
    its resolver addresses) its resolv.conf (`simnet.net.resolv`), so the processes started
    there afterwards resolve through them."""
    services = DnsServices()
    try:  # all started at once, then each waited for
        services.zone = launch_unbound(
            run, "zone", zone_node, zone_ns, render_zone(zone_listen, records), zone_listen
        )
        for site in sites:
            config = render_dns64([site.listen], site.prefix, site.upstream)
            services.dns64[site.node] = launch_unbound(
                run, "dns64", site.node, site.ns, config, [site.listen]
            )
        for server in [services.zone, *services.dns64.values()]:
            server.wait_ready()
        for ns, nameservers in (resolvers or {}).items():
            if nameservers:
                resolv.install(run, ns, nameservers)
    except BaseException:
        services.stop()
        raise
    return services


def dns_needed(plan: NetworkPlan) -> bool:
    """Does `plan` get the zone server and its resolvers? Where the emulated internet carries
    IPv6: a network planned in IPv4 alone runs as it always has, without them."""
    return IPV6 in plan.families


def start_network_dns(network: Network) -> DnsServices:
    """The DNS of a built network (`dns_needed`): the zone server on the core's addresses
    (`RESOLVER_NODE`) with every server's addresses, a DNS64 resolver in each NAT64 carrier,
    and a resolv.conf for every host and server naming its resolvers (`Node.resolvers`)."""
    plan = network.plan
    if not dns_needed(plan):
        return DnsServices()
    records = {
        server_name(name): node.all_addresses()
        for name, node in plan.nodes.items()
        if node.role is Role.SERVER
    }
    zone_listen = [ADDRESSING[family].core for family in sorted(plan.families)]
    sites = [
        Dns64Site(
            node=name,
            ns=network.ns(name),
            listen=node.router.dns64,
            prefix=node.router.nat64_prefix,
            upstream=node.resolvers,
        )
        for name, node in plan.nodes.items()
        if node.router is not None
        and node.router.dns64 is not None
        and node.router.nat64_prefix is not None
    ]
    resolvers = {
        network.ns(name): node.resolvers
        for name, node in plan.nodes.items()
        if node.role in (Role.HOST, Role.SERVER)
    }
    return start_dns(
        network.run,
        RESOLVER_NODE,
        network.ns(RESOLVER_NODE),
        zone_listen,
        records,
        sites,
        resolvers,
    )

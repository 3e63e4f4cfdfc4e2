"""One call between warm peers, and what it needs: the scenario's call checked (`call_of`), its
servers and peer agents started once (`start_services`), one call in a fresh signaling room
(`one_call`) and the row's call columns from both sides' results (`call_outcome`).

A scenario's calls (`simnet.run.calls`) and load levels (`simnet.run.load`) both make calls this
way.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Network
from typing import Any

from simnet.addresses import IPV4, IPV6, Family, IPAddress
from simnet.call.row import SideNetwork, call_row, family_figures
from simnet.call.timeline import Timeline
from simnet.errors import EnvironmentProblem, ScenarioError
from simnet.net.builder import Network
from simnet.peer.control.agent import PeerAgent, PeerAgentError, result_of
from simnet.peer.control.hosting import PeerHost, start_hosted
from simnet.peer.iceurl import IceUrl
from simnet.peer.protocol import CallCommand, CallResult, IceServer, SelectedPair
from simnet.results.schema import CallOutcome
from simnet.run.peers import hosted_argv, kind_of, missing_programs, peer_argv
from simnet.run.proxied import ProxySide, proxied_hosts, proxy_figures, unsupported
from simnet.scenario.family import WORD_FAMILIES
from simnet.scenario.model import CallSpec, Scenario, TurnLimits
from simnet.services.coturn import CoturnHandle, LongTermAuth, RestAuth, TurnConfig, start_coturn
from simnet.services.dns import DnsServices, server_name, start_network_dns
from simnet.services.signaling import SignalingServer
from simnet.services.squid import INSTALL_FIX as SQUID_FIX
from simnet.services.squid import ProxyConfig, SquidHandle, squid_installed, start_squid

SIGNALING_PORT = 443
AGENT_MARGIN_S = 5.0  # on top of the sum of phase timeouts, before the controller gives up


@dataclass
class Services:
    dns: DnsServices = field(default_factory=DnsServices)  # where the network has names
    turn: dict[str, CoturnHandle] = field(default_factory=dict)
    proxies: dict[str, SquidHandle] = field(default_factory=dict)
    proxied: dict[str, ProxySide] = field(default_factory=dict)  # hosts behind a proxy_only
    call_wall_t: float = 0.0  # Unix time the last call started (for the proxies' logs)
    signaling: SignalingServer | None = None
    agents: dict[str, PeerAgent] = field(default_factory=dict)
    hosts: list[PeerHost] = field(default_factory=list)  # processes hosting several peers
    # each node's address families (`simnet.net.plan.Node.families`): the URLs a peer gets
    families: dict[str, frozenset[Family]] = field(default_factory=dict)
    # the NAT64 prefix on each host's way to the internet, for the hosts that have one
    nat64: dict[str, IPv6Network] = field(default_factory=dict)

    @property
    def carries_ipv6(self) -> bool:
        """Whether the network has IPv6 anywhere (then rows have `FamilyFigures`)."""
        return any(IPV6 in families for families in self.families.values())

    def side_network(self, host: str) -> SideNetwork:
        return SideNetwork(self.families.get(host, frozenset({IPV4})), self.nat64.get(host))

    def server_families(self) -> dict[str, frozenset[Family]]:
        """Each STUN/TURN server's name in the zone -> the families it has addresses of."""
        return {server_name(name): self.families.get(name, frozenset()) for name in self.turn}

    def peer_columns(self, scenario: Scenario, call: CallSpec) -> dict[str, str | None]:
        """Which stack each side of `call` is (the scenario's kind: aiortc, chromium, external)
        and the version its peer announced when it started."""
        columns: dict[str, str | None] = {}
        for side, host in (("offerer", call.offerer), ("answerer", call.answerer)):
            ready = self.agents[host].ready_event
            columns[f"{side}_peer"] = scenario.hosts[host].peer_kind
            version = ready.get("peer_version") or ready.get("peer_kind")
            columns[f"{side}_peer_version"] = None if version is None else str(version)
        return columns

    async def close(self) -> None:
        await asyncio.gather(*(agent.close() for agent in self.agents.values()))
        await asyncio.gather(*(host.close() for host in self.hosts))
        if self.signaling is not None:
            self.signaling.close()
            await self.signaling.wait_closed()
        for handle in self.turn.values():
            handle.stop()
        for proxy in self.proxies.values():
            proxy.stop()
        self.dns.stop()


def call_of(scenario: Scenario, source: str | None = None) -> CallSpec:
    """The scenario's call (its `call:` section, else the default call), checked against its
    hosts and servers by the same rules `validate` applies to a `call:` section; `source` (the
    file, with its `--set`s) starts the error."""
    call = scenario.call or CallSpec()
    problems = scenario.call_problems(call)
    if problems:
        where = source or f"scenario {scenario.name}"
        default = "" if scenario.call else " (the file has no `call:` section: the default call)"
        raise ScenarioError(
            f"{where}: cannot make a call{default}: {problems[0]}",
            fix=None if scenario.call else "add a `call:` section naming two hosts",
        )
    missing_programs(scenario.hosts, [call.offerer, call.answerer], source or scenario.name)
    proxies = scenario.servers_of("http-proxy")
    if proxies and not squid_installed():  # before anything is built
        raise EnvironmentProblem(
            f"{source or scenario.name}: servers.{proxies[0]} is an http-proxy, but squid is "
            "not installed",
            fix=SQUID_FIX,
        )
    return call


def _servers(scenario: Scenario, kind: str) -> list[str]:
    return scenario.servers_of(kind)


def scenario_digest(scenario: Scenario) -> str:
    """The scenario's definition, its seed left out: runs that differ only in the draw measure
    one variant (each row keeps its own `seed`). Hashed at the default seed, so a scenario
    keeps one digest whatever seed it runs with."""
    definition = scenario.model_copy(update={"seed": 0})
    return hashlib.sha256(definition.model_dump_json().encode()).hexdigest()[:12]


async def start_services(
    network: Network,
    scenario: Scenario,
    peers: list[str],
    shared: Sequence[Sequence[str]] = (),
) -> Services:
    """Everything the calls need, ready (each waits on its own readiness event): the DNS
    where the network has it (`simnet.services.dns`), STUN/TURN, signaling and the peers.

    `shared`: groups of peers, each group's peers of a kind that can share a process
    (`simnet.peerkinds.Capabilities.shared_process`) hosted by one process of that kind
    (`simnet.peer.control.hosting`); every other peer has a process of its own."""
    services = Services(
        families={name: node.families for name, node in network.plan.nodes.items()},
        nat64=nat64_prefixes(network, peers),
    )
    try:
        # names first: every process started below resolves through its node's resolver
        services.dns = start_network_dns(network)
        for name in _servers(scenario, "turn") + _servers(scenario, "stun"):
            spec = scenario.servers[name]
            auth = RestAuth(secret=secrets.token_hex(16)) if spec.auth == "rest" else LongTermAuth()
            relaying = tuple(WORD_FAMILIES[f] for f in spec.relay_families or ())
            services.turn[name] = await start_coturn(
                network,
                name,
                TurnConfig(auth=auth, relay_families=relaying, **turn_limits(spec.limits)),
            )
        for name in _servers(scenario, "http-proxy"):
            spec = scenario.servers[name]
            services.proxies[name] = await start_squid(
                network,
                name,
                ProxyConfig(
                    tuple(network.plan.nodes[name].all_addresses()),
                    tuple(spec.proxy_ports),
                    spec.proxy_auth,
                ),
            )
        services.proxied = proxied_hosts(network, peers, services.proxies)
        signaling = _servers(scenario, "signaling")[0]
        # Port 443: signaling is HTTPS-shaped traffic, the one port a strict firewall lets out.
        services.signaling = SignalingServer(
            network.ns(signaling),
            network.address(signaling),
            port=SIGNALING_PORT,
            also=network.plan.nodes[signaling].all_addresses(),  # both families where dual
        )
        await services.signaling.start()
        certificates = [h.cert_path for h in services.turn.values() if h.cert_path is not None]
        groups = _hosted_groups(scenario, shared, set(services.proxied))
        hosted = {p for group in groups for p in group}
        own = [p for p in peers if p not in hosted]
        agents = await asyncio.gather(
            *(
                PeerAgent.start(
                    network.run,
                    network.ns(p),
                    argv=peer_argv(
                        scenario.hosts[p],
                        network.ns(p),
                        network.run.workdir,
                        p,
                        certificates,
                        services.proxied[p].url if p in services.proxied else None,
                    ),
                )
                for p in own
            )
        )
        services.agents = dict(zip(own, agents, strict=True))
        started = await asyncio.gather(
            *(
                start_hosted(
                    network.run,
                    [network.ns(p) for p in group],
                    hosted_argv(kind_of(scenario.hosts[group[0]])),
                    name=f"peer-host-{i}",
                )
                for i, group in enumerate(groups)
            ),
            return_exceptions=True,  # every host that did start is closed below on a failure
        )
        services.hosts = [h for h in started if isinstance(h, PeerHost)]
        failed = [e for e in started if isinstance(e, BaseException)]
        if failed:
            raise failed[0]
        for group, host in zip(groups, services.hosts, strict=True):
            services.agents.update(zip(group, host.peers, strict=True))
    except BaseException:
        await services.close()
        raise
    return services


def nat64_prefixes(network: Network, hosts: Sequence[str]) -> dict[str, IPv6Network]:
    """The NAT64 prefix of the router (innermost first) on each host's way to the internet,
    for the hosts behind a NAT64."""
    out: dict[str, IPv6Network] = {}
    for host in hosts:
        for router in network.plan.routers_of(host):
            if router.nat64_prefix is not None:
                out[host] = router.nat64_prefix
                break
    return out


def _hosted_groups(
    scenario: Scenario, shared: Sequence[Sequence[str]], proxied: set[str]
) -> list[list[str]]:
    """`shared`'s groups, each split by kind, of the peers whose kind can share a process; a
    peer behind a proxy gets an agent of its own (its proxy is the agent's `--proxy`)."""
    groups: list[list[str]] = []
    for group in shared:
        by_kind: dict[str, list[str]] = {}
        for peer in group:
            kind = kind_of(scenario.hosts[peer])
            if kind.capabilities.shared_process and peer not in proxied:
                by_kind.setdefault(kind.name, []).append(peer)
        groups += by_kind.values()
    return groups


def turn_limits(limits: TurnLimits | None) -> dict[str, Any]:
    """`servers.NAME.limits` as `TurnConfig` fields."""
    if limits is None:
        return {}
    fields: dict[str, Any] = {
        "total_quota": limits.max_allocations,
        "user_quota": limits.user_quota,
        "bps_capacity": limits.bps_capacity,
        "max_bps": limits.max_bps,
    }
    if limits.relay_ports is not None:
        fields["min_relay_port"], fields["max_relay_port"] = limits.relay_ports
    return fields


def server_hosts(
    call: CallSpec, server: str, addresses: Sequence[IPAddress], client: frozenset[Family]
) -> list[IPAddress | str]:
    """What a client of the `client` families gets as the host of `server`'s URLs.

    `call.ice_urls: names`: the server's name (`<server>.simnet.test`), which the client's host
    resolves. Literals: the server's first address of each family the client has, IPv4 first
    (the deployment's primary address, as an IPv4-only call has always had it); when the two
    share no family (an IPv6-only client, an IPv4-only server), every family the server has,
    which is what such a user is handed in the field: a URL the client cannot use."""
    if call.ice_urls == "names":
        return [server_name(server)]
    first: dict[Family, IPAddress] = {}
    for address in addresses:
        first.setdefault(address.version, address)
    usable = [first[f] for f in sorted(first) if f in client] or [first[f] for f in sorted(first)]
    return list(usable)


def ice_servers(
    scenario: Scenario,
    call: CallSpec,
    services: Services,
    every: bool = False,
    client: frozenset[Family] = frozenset({IPV4}),
) -> tuple[list[IceServer], str | None]:
    """STUN and TURN as the call asks, for a client of the `client` address families.

    aiortc uses the first STUN URL and allocates on one TURN server, so it gets one server of
    each: the first STUN server, and the call's TURN server (`turn_server`, else the first) with
    every transport of `turn_transports`, in that order (it allocates on the first; simnet's agent
    tries the next when that gives no relay candidate). With `every` (a browser, which gathers
    from all of them, as a web app would configure it), every STUN server and every TURN server
    (only `turn_server` when the call names one) with every transport of `turn_transports`, in
    that order. A transport's URLs have its port of `turn_ports` and name the server by
    `server_hosts` (an address of each family the client can use, or its name): a transport's
    URLs for each of them, in that order.
    """
    out: list[IceServer] = []
    ca_file: str | None = None

    def hosts(name: str) -> list[IPAddress | str]:
        return server_hosts(call, name, services.turn[name].config.listening_ips, client)

    stun_names = _servers(scenario, "stun") or _servers(scenario, "turn")
    if call.stun and stun_names:
        for name in stun_names if every else stun_names[:1]:
            out.append(IceServer(urls=[str(IceUrl.of("stun", h, 3478)) for h in hosts(name)]))
    turn_names = _servers(scenario, "turn")
    if call.turn and turn_names:
        chosen = [call.turn_server] if call.turn_server else turn_names
        for name in chosen if every else chosen[:1]:
            handle = services.turn[name]
            urls = [
                turn_url(h, t, call.turn_ports.of(t))
                for t in call.turn_transports
                for h in hosts(name)
            ]
            username, password = handle.credentials()
            if call.wrong_credentials:
                password = "not-" + password
            out.append(IceServer(urls=urls, username=username, credential=password))
            if handle.cert_path is not None:
                ca_file = ca_file or str(handle.cert_path)
    return out, ca_file


def turn_url(host: IPAddress | str, transport: str, port: int) -> str:
    """The TURN URL of one transport to `host` (an address or a name) on `port`."""
    url = IceUrl.of(
        "turns" if transport == "tls" else "turn",
        host,
        port,
        "udp" if transport == "udp" else "tcp",
    )
    return str(url)


def _commands(
    scenario: Scenario, call: CallSpec, services: Services, room: str
) -> tuple[CallCommand, CallCommand]:
    assert services.signaling is not None
    common: dict[str, Any] = {
        "signaling_kind": call.signaling,
        "room": room,
        "ice_transport_policy": call.ice_policy,
        "data_bytes": call.data_bytes,
        # The scenario's own settings objects (simnet.callspec): the agent gets what the
        # scenario says, defaults included.
        "media": call.media,
        "duration_s": call.duration_s,
        "hold_s": call.duration_s if call.timeline else 0.0,
        "timeouts": call.timeouts,
        "liveness": call.liveness,
    }

    def servers_for(peer: str) -> dict[str, Any]:
        every = kind_of(scenario.hosts[peer]).capabilities.several_turn_urls
        client = services.families.get(peer) or frozenset({IPV4})
        servers, ca_file = ice_servers(scenario, call, services, every=every, client=client)
        assert services.signaling is not None
        return {
            "ice_servers": servers,
            "ca_file": ca_file,
            "signaling_url_base": services.signaling.base_url_for(client),
        }

    offer = CallCommand(
        role="offer",
        peer=call.offerer,
        remote_peer=call.answerer,
        **common,
        **servers_for(call.offerer),
    )
    answer = CallCommand(
        role="answer",
        peer=call.answerer,
        remote_peer=call.offerer,
        **common,
        **servers_for(call.answerer),
    )
    return offer, answer


async def one_call(
    scenario: Scenario,
    call: CallSpec,
    services: Services,
    index: int,
    timeline: Timeline | None = None,
) -> tuple[CallResult | None, CallResult | None, str | None]:
    """Run call number `index`; returns both sides' results (None where an agent failed).

    With a `timeline`, its events are applied to the network during the call (and every
    changed link is put back afterwards); its `columns()` then describe what happened."""
    services.call_wall_t = time.time()
    if unsupported(scenario, call, services.proxied):
        return None, None, None  # `call_outcome` says why, without waiting out ICE
    offer_cmd, answer_cmd = _commands(scenario, call, services, room=f"call-{index}")
    limit = offer_cmd.timeouts.total_s(call.duration_s) + AGENT_MARGIN_S
    offerer, answerer = services.agents[call.offerer], services.agents[call.answerer]
    if timeline is not None:  # an ice-restart event is a command to a peer's agent
        timeline.send = lambda peer, name: services.agents[peer].command(name)
    task = asyncio.ensure_future(timeline.run()) if timeline else None
    try:
        outcomes = await asyncio.gather(
            offerer.call(offer_cmd, limit, timeline.observer(call.offerer) if timeline else None),
            answerer.call(
                answer_cmd, limit, timeline.observer(call.answerer) if timeline else None
            ),
            return_exceptions=True,
        )
    finally:
        if timeline is not None and task is not None:
            await timeline.stop(task)
    results: list[CallResult | None] = []
    agent_error = None
    for outcome in outcomes:
        if isinstance(outcome, PeerAgentError):
            results.append(None)
            agent_error = f"agent: {outcome.kind}: {outcome}"
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            results.append(result_of(outcome))
    return results[0], results[1], agent_error


def turn_addresses(services: Services) -> dict[str, set[str]]:
    """Each TURN server's addresses: where it listens and where it relays from."""
    return {
        name: {str(ip) for ip in (*h.config.listening_ips, *h.config.effective_relay_ips)}
        for name, h in services.turn.items()
    }


def relay_region(
    scenario: Scenario, addresses: dict[str, set[str]], pair: SelectedPair | None
) -> str | None:
    """The `region` of the TURN server the call went through, read from the relay candidate of
    the offerer's selected pair: its address is one of that server's relay addresses, whichever
    side allocated it. Not from the allocating side's report of its relay: the answerer's
    nominated pair can differ from the offerer's (aiortc nominates aggressively), and a call
    whose offerer sent from its host candidate to the answerer's relay once named no region."""
    if pair is None:
        return None
    relayed = {c.address for c in (pair.local, pair.remote) if c.type == "relay"}
    for name, ips in addresses.items():
        if relayed & ips:
            return scenario.servers[name].region
    return None


async def call_outcome(
    scenario: Scenario,
    call: CallSpec,
    services: Services,
    offer: CallResult | None,
    answer: CallResult | None,
    agent_error: str | None,
) -> CallOutcome:
    """The row's call columns: both sides' results, the relay's region, each side's stack,
    and what a proxy in the way did (`simnet.run.proxied`)."""
    outcome = call_row(offer, answer, agent_error)
    cannot = unsupported(scenario, call, services.proxied)
    if cannot is not None:
        outcome = outcome.model_copy(
            update={"error": "proxy-unsupported", "error_detail": cannot, "via_proxy": False}
        )
    families = None
    if services.carries_ipv6:  # an IPv4 network's rows stay as they were
        families = family_figures(
            offer,
            answer,
            services.side_network(call.offerer),
            services.side_network(call.answerer),
            services.server_families(),
        )
    outcome = outcome.model_copy(
        update={
            "relay_region": relay_region(
                scenario, turn_addresses(services), offer.selected_pair if offer else None
            ),
            "families": families,
            **services.peer_columns(scenario, call),
        }
    )
    outcome = await with_proxy_figures(outcome, call, services)
    return inferred_relay_protocol(outcome, call)


async def with_proxy_figures(
    outcome: CallOutcome, call: CallSpec, services: Services
) -> CallOutcome:
    """`via_proxy` and `proxy_target` from the proxies' access logs and open tunnels; a failed
    call whose proxy refused a tunnel fails with `proxy-refused` (the refusal in
    `error_detail`). Read in a thread: asking squid's manager is a blocking socket exchange, and
    under `simnet load` other calls share this loop."""
    if outcome.error == "proxy-unsupported" or not services.proxied:
        return outcome
    turn = set().union(*turn_addresses(services).values()) if services.turn else set()
    # with `call.ice_urls: names` a browser asks the proxy for CONNECT <name>:443
    turn |= {server_name(name) for name in services.turn}
    figures = await asyncio.to_thread(
        proxy_figures, call, services.proxied, services.proxies, turn, services.call_wall_t
    )
    if figures is None:
        return outcome
    tunnels = [a.proxy_ms for a in outcome.turn_attempts if a.ok and a.proxy_ms is not None]
    update: dict[str, Any] = {
        "via_proxy": figures.via_proxy,
        "proxy_target": figures.target,
        "proxy_connect_ms": max(tunnels) if tunnels else None,
    }
    if not outcome.connected and figures.refused is not None:
        refused = figures.refused
        update["error"] = "proxy-refused"
        update["error_detail"] = (
            f"the proxy answered {refused.status} to CONNECT {refused.target}"
            f" (then: {outcome.error})"
        )
    return outcome.model_copy(update=update)


def inferred_relay_protocol(outcome: CallOutcome, call: CallSpec) -> CallOutcome:
    """A relayed row no report gave the relay's transport: the call's, flagged as inferred,
    when it offered only one; else left unknown.

    No report gives it when the relayed side read no TURN client (seen once, before agents kept
    the pair from ICE completion), or when the answerer's pair used another relay than the
    offerer's (`call_row`). aiortc takes one TURN URL, but a browser gets every listed transport,
    so with several listed the first is only a guess."""
    if outcome.path != "relay" or outcome.relay_protocol is not None:
        return outcome
    if len(call.turn_transports) != 1:
        return outcome
    return outcome.model_copy(
        update={"relay_protocol": call.turn_transports[0], "relay_protocol_inferred": True}
    )


def queue_namespaces(network: Network) -> list[str]:
    """Where the userspace link emulator's queues may be (none with netem or ideal links)."""
    if network.run.info.get("links", {}).get("backend") != "nfqueue":
        return []
    return [network.ns(name) for name in network.plan.nodes]

"""`simnet verify-nat`: build a scenario with a probe client behind every NAT and classify each.

A NAT's IPv4 translation and, for a network with IPv6, its IPv6 side (forwarded untranslated,
filtered statefully) are measured apart, each proven with the same RFC 5780 tests against a
probe server of two addresses in that family: each is its own verdict, with its `family`. A
NAT64 carrier's IPv4 side is measured from its IPv6-only probe host through the NAT64 prefix
(`"family": "nat64"`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from ipaddress import IPv6Network

from simnet.addresses import IPV4, IPV6, Family
from simnet.net.builder import Network, emulated_network
from simnet.net.plan import NetworkPlan, plan_network
from simnet.probe.classify import NatObservation
from simnet.probe.client import NatProber, ProbeFailed
from simnet.probe.server import PORTS, ProbeServer
from simnet.scenario.family import FAMILY_WORDS, V6Filtering
from simnet.scenario.model import NAT64_DEFAULT_PRESET, NatSpec, Scenario, ServerSpec
from simnet.scenario.nat import Filtering, Mapping, NatBehavior, PortAllocation
from simnet.signals import run_terminable

PROBE_SERVER = "nat-probe"


@dataclass(frozen=True)
class NatVerdict:
    nat: str
    preset: str | None
    expected: NatBehavior
    observed: NatObservation | None  # None: no UDP got through to the probe server
    mismatches: list[str]
    family: str = "ipv4"  # "ipv6": the router's IPv6 side, untranslated and filtered
    nat64: bool = False  # IPv4 measured through a NAT64, from an IPv6-only probe host

    @property
    def as_configured(self) -> bool:
        return not self.mismatches

    def as_json(self) -> dict[str, object]:
        """The verdict as `simnet verify-nat --json` prints it."""
        o = self.observed
        out: dict[str, object] = {
            "nat": self.nat,
            "family": "nat64" if self.nat64 else self.family,
            "preset": self.preset,
            "udp_blocked": o is None,
            "mapping": o.mapping.value if o else None,
            "filtering": o.filtering.value if o else None,
            "port_allocation": o.port_allocation.value if o else None,
            "hairpin": o.hairpin if o else None,
            "translates": o.translates if o else None,
            "mapped_address": o.mapped_address if o else None,
            "binding_lifetime_s": o.lifetime_upper_s if o else None,
            "binding_lifetime_bounds_s": [o.lifetime_lower_s, o.lifetime_upper_s] if o else None,
            "expected": self.expected.model_dump(mode="json"),
            "as_configured": self.as_configured,
            "mismatches": self.mismatches,
        }
        if self.family == FAMILY_WORDS[IPV6]:  # no mapping; the IPv6 firewall's filtering
            filtering = V6Filtering.of(self.expected.filtering)
            out["mapping"] = "none"
            out["filtering"] = V6Filtering.of(o.filtering).value if o else None
            out["expected"] = {
                "filtering": filtering.value,
                "udp_timeout_s": (
                    None if filtering is V6Filtering.OPEN else self.expected.udp_timeout_s
                ),
            }
        return out


def ipv6_expectation(plan: NetworkPlan, node: str) -> NatBehavior:
    """What a probe from `node` should observe in IPv6: no translation (its own address and
    port), the chain's strictest filtering and shortest binding timeout, and a neighbour on
    the same LAN reaching it directly (hairpin: true)."""
    filtering, timeout = plan.expected_v6(node)
    return NatBehavior(
        translates=False,
        mapping=Mapping.EIM,
        filtering=filtering.as_filtering,
        port_allocation=PortAllocation.PRESERVE,
        hairpin=True,
        udp_timeout_s=timeout or NatBehavior().udp_timeout_s,
    )


def preset_of(spec: NatSpec) -> str:
    """The preset a NAT behaves as: a NAT64 left at the default preset has a default of its
    own, what carriers run (`NAT64_DEFAULT_PRESET`)."""
    if spec.nat64 and spec.preset == NatSpec.model_fields["preset"].default:
        return NAT64_DEFAULT_PRESET
    return spec.preset


def preset_scenario(preset: str) -> Scenario:
    """A scenario with just the named preset's NAT, named after the preset."""
    return Scenario(name=preset, nats={preset: NatSpec(preset=preset)})


@dataclass(frozen=True)
class ProbeLayout:
    """Where the probe server and, for each NAT, the probe host and its neighbour are."""

    plan: NetworkPlan
    server: str
    hosts: dict[str, tuple[str, str]]


def probe_layout(scenario: Scenario) -> ProbeLayout:
    """The scenario plus a two-address probe server and two probe hosts behind each NAT."""
    taken = {*scenario.nats, *scenario.hosts, *scenario.servers}
    server = _unique(PROBE_SERVER, taken)
    taken.add(server)
    servers = {**scenario.servers, server: ServerSpec(kind="probe", addresses=2)}
    extra: dict[str, str] = {}
    hosts: dict[str, tuple[str, str]] = {}
    for router in scenario.routers():
        probe = _unique(f"probe-{router.name}", taken)
        neighbour = _unique(f"neighbour-{router.name}", taken | {probe})
        taken |= {probe, neighbour}
        extra |= {probe: router.name, neighbour: router.name}
        hosts[router.name] = (probe, neighbour)
    plan = plan_network(scenario.model_copy(update={"servers": servers}), extra_hosts=extra)
    return ProbeLayout(plan, server, hosts)


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def udp_allowed(plan: NetworkPlan, node: str, family: Family = IPV4) -> bool:
    """Do the routers between `node` and the internet let the probe's UDP out in `family`
    (no firewall blocks it, no router black-holes the family)?"""
    if family in plan.blackholed(node):
        return False
    probe_rules = {f"udp/{port}" for port in PORTS}
    for router in plan.routers_of(node):
        firewall = router.firewall
        if firewall is None:
            continue
        if firewall.block_udp or (firewall.allow and not probe_rules <= set(firewall.allow)):
            return False
    return True


Probed = tuple[str, Family]  # a NAT, and the family its probe measures


async def classify_all(
    network: Network, layout: ProbeLayout, lifetime_max_s: float | None
) -> dict[Probed, NatObservation | None]:
    """Probe every NAT in each family its LAN has: in IPv4, NATs that share a translating
    router one at a time (the shared NAT's port allocation must not interleave between them),
    the others at once; in IPv6 (nothing is translated) all at once."""
    server = layout.plan.nodes[layout.server]
    servers = {
        family: ProbeServer(network.ns(layout.server), server.all_addresses(family))
        for family in (IPV4, IPV6)
        if len(server.all_addresses(family)) >= 2
    }
    try:
        for probe_server in servers.values():
            await probe_server.start()
        observed: dict[Probed, NatObservation | None] = {}
        probers: dict[Probed, NatProber] = {}
        for nat, (probe, neighbour) in layout.hosts.items():
            nat64 = nat64_prefix(layout.plan, probe)
            families = layout.plan.nodes[probe].families | ({IPV4} if nat64 else set())
            for family in sorted(families & servers.keys()):
                translators = sum(r.behavior.translates for r in layout.plan.routers_of(probe))
                probers[(nat, family)] = NatProber(
                    network.ns(probe),
                    servers[family].addresses,
                    network.ns(neighbour),
                    race=family == IPV4 and translators == 1,
                    nat64=nat64 if family == IPV4 else None,
                )

        async def observe_in_turn(keys: list[Probed]) -> None:
            for key in keys:
                host = layout.plan.nodes[layout.hosts[key[0]][0]]
                address = host.address_of(key[1]) or host.address  # through a NAT64: its IPv6
                try:
                    observed[key] = await probers[key].observe(address)
                except ProbeFailed:
                    observed[key] = None
                    probers.pop(key).close()

        groups = [
            [(nat, IPV4) for nat in group if (nat, IPV4) in probers]
            for group in sharing_a_translator(layout)
        ]
        groups += [[key] for key in probers if key[1] == IPV6]
        await asyncio.gather(*map(observe_in_turn, groups))
        if lifetime_max_s:
            bounds = await asyncio.gather(*(p.lifetime(lifetime_max_s) for p in probers.values()))
            for prober in probers.values():
                prober.close()
            for key, (lower, upper) in zip(probers, bounds, strict=True):
                seen = observed[key]
                if seen is not None:  # probers of unreachable NATs were dropped above
                    lifetime = {"lifetime_lower_s": lower, "lifetime_upper_s": upper}
                    observed[key] = seen.model_copy(update=lifetime)
        return observed
    finally:
        for probe_server in servers.values():
            probe_server.close()


def nat64_prefix(plan: NetworkPlan, node: str) -> IPv6Network | None:
    """The prefix of the NAT64 `node` reaches IPv4 through (an IPv6-only host behind a NAT64
    carrier), else None."""
    return next((r.nat64_prefix for r in plan.routers_of(node) if r.nat64_prefix), None)


def sharing_a_translator(layout: ProbeLayout) -> list[list[str]]:
    """The probed NATs, grouped so that two NATs whose probes cross a common translating router
    share a group. In a tree of routers two chains that meet continue to the internet together,
    so the outermost translating router names the group; a chain with none is alone."""
    groups: dict[str, list[str]] = {}
    for nat, (probe, _) in layout.hosts.items():
        translating = [
            name
            for name in layout.plan.chain(probe)
            if (router := layout.plan.nodes[name].router) is not None and router.behavior.translates
        ]
        groups.setdefault(translating[-1] if translating else nat, []).append(nat)
    return list(groups.values())


def verify(scenario: Scenario, lifetime_max_s: float | None = None) -> list[NatVerdict]:
    """Build `scenario`, probe each of its NATs, and compare with the configuration."""
    layout = probe_layout(scenario)
    with emulated_network(layout.plan, label=f"verify-nat {scenario.name}") as network:
        observed = run_terminable(classify_all(network, layout, lifetime_max_s))
    presets = {name: preset_of(spec) for name, spec in scenario.nats.items() if not spec.knobs()}
    verdicts = []
    for (nat, family), seen in observed.items():
        probe = layout.hosts[nat][0]
        if family == IPV6:
            expected = ipv6_expectation(layout.plan, probe)
            expires = expected.filtering is not Filtering.EIF
        else:
            expected = layout.plan.expected_behavior(probe)
            expires = expected.translates
        open_udp = udp_allowed(layout.plan, probe, family)
        if seen is None:
            wrong = [] if not open_udp else ["the probe server could not be reached over UDP"]
        elif not open_udp:
            wrong = ["UDP got through although a firewall blocks it"]
        else:
            wrong = seen.mismatches(expected, lifetime_max_s, expires=expires)
        verdicts.append(
            NatVerdict(
                nat=nat,
                preset=presets.get(nat),
                expected=expected,
                observed=seen,
                mismatches=wrong,
                family=FAMILY_WORDS[family],
                nat64=family == IPV4 and nat64_prefix(layout.plan, probe) is not None,
            )
        )
    order = {nat: i for i, nat in enumerate(layout.hosts)}
    return sorted(verdicts, key=lambda v: (order[v.nat], v.family))

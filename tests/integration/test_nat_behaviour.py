"""Every NAT simnet builds behaves as configured, as an RFC 5780-style probe sees it.

Why: simnet's results are only as good as its NATs. A WebRTC test that "passes behind a
symmetric NAT" means nothing if the NAT built was really a cone. So each preset, and random
combinations of the RFC 4787 knobs (alone and with one NAT behind another), are built in real
namespaces and probed from a host behind them; the verdict must match the configuration. The
binding lifetime and the simultaneous-open race (docs/kernel-notes.md#simultaneous-open-pitfall)
get tests of their own, including one that removes simnet's guard against the race and shows
that the trap is real on this kernel.

The tests at the end pin bugs these tests found (chained NATs, `open` routers), now fixed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import nftables
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from simnet.errors import ScenarioError
from simnet.net import builder, netns
from simnet.net.builder import Network, emulated_network
from simnet.net.plan import WAN_IF
from simnet.net.registry import Run
from simnet.probe.client import ProbeFailed, ProbeSocket
from simnet.probe.server import PORTS, ProbeServer
from simnet.run.verify_nat import NatVerdict, ProbeLayout, preset_scenario, probe_layout, verify
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import Scenario
from simnet.scenario.nat import PRESET_NAMES, Filtering, Mapping, PortAllocation

pytestmark = pytest.mark.integration

MAPPINGS = ["EIM", "ADM", "APDM"]  # least to most restrictive
FILTERINGS = ["EIF", "ADF", "APDF"]
ALLOCATIONS = ["preserve", "sequential", "random"]
BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


@pytest.fixture(autouse=True)
def no_leftovers(monkeypatch: pytest.MonkeyPatch, tools: Any) -> Iterator[None]:
    """Every run a test starts leaves no namespace, state file or process behind."""
    runs: list[Run] = []
    enter = Run.__enter__

    def recording_enter(self: Run) -> Run:
        runs.append(self)
        return enter(self)

    monkeypatch.setattr(Run, "__enter__", recording_enter)
    yield
    for run in runs:
        assert tools.leftovers(run.id, run.pids) == {}, f"run {run.id} left things behind"


def describe(verdicts: list[NatVerdict], knobs: dict[str, Any] | None = None) -> str:
    lines = []
    for v in verdicts:
        if v.mismatches:
            spec = (knobs or {}).get(v.nat, v.preset)
            configured = json.dumps(spec)
            if isinstance(spec, dict) and spec.get("behind") in (knobs or {}):
                configured += f" behind {json.dumps((knobs or {})[spec['behind']])}"
            lines.append(f"{v.nat} {configured}: {'; '.join(v.mismatches)}")
    return "\n".join(lines)


def verify_dict(nats: dict[str, Any], **kwargs: Any) -> dict[str, NatVerdict]:
    scenario = scenario_from_dict({"name": "nat-test", "nats": nats})
    return {v.nat: v for v in verify(scenario, **kwargs)}


# --- (a) presets ----------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_preset_behaves_as_configured(preset: str) -> None:
    verdicts = verify(preset_scenario(preset))
    expected_nats = {preset, f"{preset}-carrier"} if preset == "cgnat" else {preset}
    assert {v.nat for v in verdicts} == expected_nats
    assert all(v.as_configured for v in verdicts), describe(verdicts)
    for v in verdicts:
        report = v.as_json()
        assert report["as_configured"] is True
        assert report["mismatches"] == []
        assert report["translates"] is (preset != "open")


def test_a_phone_behind_a_cgn_sees_the_carriers_behaviour_from_the_shared_range() -> None:
    """`cgn`: one carrier-grade NAT and the phone directly behind it. Measured from a host on
    its LAN: the host's address is in 100.64.0.0/10 (RFC 6598), the NAT maps endpoint-
    independently (hole punching works against cone peers), filters by address and port,
    picks random public ports and hairpins; peers see the carrier's public address."""
    layout = probe_layout(preset_scenario("cgn"))
    probe, _ = layout.hosts["cgn"]
    (address,) = [a for addrs in layout.plan.nodes[probe].addresses.values() for a in addrs]
    assert address in IPv4Network("100.64.0.0/10")
    (verdict,) = verify(preset_scenario("cgn"))
    observed = verdict.observed
    assert observed is not None, "no UDP got through the CGN"
    assert verdict.as_configured, describe([verdict])
    assert (observed.mapping, observed.filtering) == (Mapping.EIM, Filtering.APDF)
    assert observed.port_allocation is PortAllocation.RANDOM and observed.hairpin
    (wan,) = layout.plan.nodes["cgn"].addresses[WAN_IF]  # the carrier's public address
    assert IPv4Address(observed.mapped_address.rsplit(":", 1)[0]) == wan.ip


# --- (b) knob combinations ------------------------------------------------------------------

knobs = st.fixed_dictionaries(
    {
        "mapping": st.sampled_from(MAPPINGS),
        "filtering": st.sampled_from(FILTERINGS),
        "port_allocation": st.sampled_from(ALLOCATIONS),
        "hairpin": st.booleans(),
    }
)


@st.composite
def chains(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    outer, inner = draw(knobs), draw(knobs)
    return inner, outer


@st.composite
def nat_layouts(draw: st.DrawFn) -> dict[str, Any]:
    """All nine mapping x filtering NATs side by side, plus two chains of two NATs."""
    nats: dict[str, Any] = {}
    for mapping in MAPPINGS:
        for filtering in FILTERINGS:
            nats[f"{mapping}-{filtering}".lower()] = {
                "mapping": mapping,
                "filtering": filtering,
                "port_allocation": draw(st.sampled_from(ALLOCATIONS)),
                "hairpin": draw(st.booleans()),
            }
    for n in (1, 2):
        inner, outer = draw(chains())
        nats[f"outer{n}"] = outer
        nats[f"inner{n}"] = {**inner, "behind": f"outer{n}"}
    return nats


@settings(
    max_examples=3,  # x 13 NATs, about 15 s each
    deadline=None,
    derandomize=True,
    database=None,
    # a failure message lists every NAT that is off, with its knobs: no shrinking (each step
    # would build a whole network again)
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(nat_layouts())
def test_knob_combinations_behave_as_configured(nats: dict[str, Any]) -> None:
    verdicts = verify_dict(nats)
    assert set(verdicts) == set(nats)
    wrong = [v for v in verdicts.values() if not v.as_configured]
    assert not wrong, describe(list(verdicts.values()), nats)


# --- (c) binding lifetime -------------------------------------------------------------------


def test_short_binding_lifetimes_are_measured_as_configured() -> None:
    nats = {
        "one": {"preset": "full-cone", "udp_timeout_s": 1},
        "two": {"preset": "symmetric", "udp_timeout_s": 2},
        "outer": {"preset": "full-cone", "udp_timeout_s": 1},
        "inner": {"preset": "port-restricted-cone", "udp_timeout_s": 2, "behind": "outer"},
    }
    verdicts = verify_dict(nats, lifetime_max_s=3)
    assert all(v.as_configured for v in verdicts.values()), describe(list(verdicts.values()))
    for name, timeout in (("one", 1), ("two", 2), ("inner", 1)):  # a chain: the shorter one
        observed = verdicts[name].observed
        assert observed is not None
        assert observed.lifetime_upper_s is not None, f"{name}: binding never expired"
        assert observed.lifetime_lower_s is not None
        assert observed.lifetime_lower_s <= timeout <= observed.lifetime_upper_s, name
        assert verdicts[name].as_json()["binding_lifetime_s"] == observed.lifetime_upper_s


def test_a_lifetime_longer_than_the_probe_waits_is_not_seen_to_expire() -> None:
    verdicts = verify_dict({"long": {"preset": "full-cone", "udp_timeout_s": 30}}, lifetime_max_s=1)
    assert verdicts["long"].as_configured, describe(list(verdicts.values()))
    assert verdicts["long"].observed is not None
    assert verdicts["long"].observed.lifetime_upper_s is None


# --- (d) the simultaneous-open race ---------------------------------------------------------


def _network_for(nats: dict[str, Any]) -> tuple[Scenario, ProbeLayout]:
    scenario = scenario_from_dict({"name": "race", "nats": nats})
    return scenario, probe_layout(scenario)


def _nft(ns: str, command: str) -> None:
    with netns.entered(ns):
        rc, _, error = nftables.Nftables().cmd(command)
    assert rc == 0, f"nft {command}: {error}"


async def _race(network: Network, layout: ProbeLayout, nat: str) -> dict[str, Any]:
    """Learn a mapping, get poked at it from the other server address, then talk to that address.

    The poke is requested from a second socket of the same host, so that the probed socket's
    inbox only holds what reached it.
    """
    addresses = layout.plan.nodes[layout.server].all_addresses()
    server = ProbeServer(network.ns(layout.server), addresses)
    await server.start()
    probe_ns = network.ns(layout.hosts[nat][0])
    sock = await ProbeSocket.open(probe_ns)
    helper = await ProbeSocket.open(probe_ns)
    a1, a2 = (str(addresses[0]), PORTS[0]), (str(addresses[1]), PORTS[0])
    try:
        first = await sock.mapped(a1)
        poked = await helper.request(a1, op="poke", target=first, reply_from=(1, 0))
        assert poked is not None and poked.poked, poked
        reached = await sock.expect(lambda reply: reply.poke, timeout=0.3)
        try:
            then: tuple[str, int] | None = await sock.mapped(a2)
        except ProbeFailed:
            then = None
        return {"first": first, "poke_reached_host": reached is not None, "then": then}
    finally:
        sock.close()
        helper.close()
        server.close()


@pytest.mark.parametrize("preset", ["port-restricted-cone", "restricted-cone"])
def test_mapping_survives_an_unsolicited_packet_from_the_next_peer(preset: str) -> None:
    _, layout = _network_for({"nat": {"preset": preset}})
    with emulated_network(layout.plan, label="race") as network:
        seen = asyncio.run(_race(network, layout, "nat"))
    assert not seen["poke_reached_host"], "the filter let an unsolicited packet in"
    assert seen["then"] == seen["first"], f"mapping changed after the poke: {seen}"


def test_without_the_prerouting_guard_the_race_breaks_the_mapping() -> None:
    """Counter-test: the guard is what makes the test above pass.

    Why the guard exists: docs/kernel-notes.md#simultaneous-open-pitfall.

    Without the `inbound` chain, the poke gets a conntrack entry (A2:P -> WAN:M, unreplied). The
    host's own packet to A2:P must then be translated to WAN:M as well (endpoint-independent
    mapping), its reply tuple clashes with that entry, and conntrack drops it (insert_failed):
    the host cannot reach A2 from that socket at all until the entry times out.
    """
    _, layout = _network_for({"nat": {"preset": "port-restricted-cone"}})
    with emulated_network(layout.plan, label="race-unguarded") as network:
        _nft(network.ns("nat"), "delete chain ip simnet inbound")
        seen = asyncio.run(_race(network, layout, "nat"))
        entries = subprocess.run(
            ["ip", "netns", "exec", network.ns("nat"), "conntrack", "-L", "-p", "udp"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    assert seen["then"] != seen["first"], f"the race did not break the mapping: {seen}"
    # the poke's own entry is what took the mapping's place
    port = seen["first"][1]
    unreplied = [line for line in entries.splitlines() if "UNREPLIED" in line]
    assert any(f"dport={port} " in line for line in unreplied), entries


# --- regressions ----------------------------------------------------------------------------
# Each was a real combination that verify did not find as configured.


def test_chain_mapping_survives_the_probe_poke() -> None:
    verdicts = verify_dict(
        {
            "outer": {"mapping": "ADM", "filtering": "EIF", "hairpin": False},
            "inner": {"preset": "port-restricted-cone", "behind": "outer"},
        }
    )
    assert verdicts["inner"].as_configured, describe(list(verdicts.values()))


def test_random_nat_behind_sequential_nat() -> None:
    verdicts = verify_dict(
        {
            "outer": {"preset": "full-cone", "port_allocation": "sequential"},
            "inner": {"preset": "full-cone", "port_allocation": "random", "behind": "outer"},
        }
    )
    assert verdicts["inner"].as_configured, describe(list(verdicts.values()))


def test_hairpin_through_two_routers() -> None:
    verdicts = verify_dict(
        {
            "outer": {"preset": "full-cone"},
            "inner": {"preset": "full-cone", "behind": "outer"},
            "nat": {"preset": "full-cone"},
            "lan": {"preset": "open", "behind": "nat"},
        }
    )
    assert all(v.as_configured for v in verdicts.values()), describe(list(verdicts.values()))


@pytest.mark.parametrize("bridge_nf", [0, 1])
def test_bridge_netfilter_decides_hairpin_through_two_routers(
    bridge_nf: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why simnet turns bridge netfilter off in its namespaces, shown both ways.

    br_netfilter (when loaded on the host, each namespace defaults to
    net.bridge.bridge-nf-call-iptables=1) runs a router's IP hooks on frames its LAN bridge
    receives. A hairpin DNAT there whose new destination sits behind the bridge port the frame
    came from is "bridged DNAT": the frame goes back out of its ingress port, and the bridge
    refuses that. Hairpinning between two ports works either way.
    """
    if bridge_nf and not BRIDGE_NF.exists():
        pytest.skip("br_netfilter is not loaded on this host")
    base_sysctls: Callable[..., None] = builder._base_sysctls

    def with_bridge_nf(node: Any) -> None:
        base_sysctls(node)
        if BRIDGE_NF.exists():  # /proc/sys/net follows the thread into the node's namespace
            netns.write_sysctl("net.bridge.bridge-nf-call-iptables", bridge_nf)

    monkeypatch.setattr(builder, "_base_sysctls", with_bridge_nf)
    verdicts = verify_dict(
        {
            "outer": {"preset": "full-cone"},
            "inner": {"preset": "full-cone", "behind": "outer"},
            "nat": {"preset": "full-cone"},
            "lan": {"preset": "open", "behind": "nat"},
        }
    )
    hairpin = {name: v.observed.hairpin for name, v in verdicts.items() if v.observed}
    assert hairpin == {
        "outer": True,
        "nat": True,
        "inner": not bridge_nf,
        "lan": not bridge_nf,
    }


def test_open_router_behind_open_router() -> None:
    verdicts = verify_dict(
        {"outer": {"preset": "open"}, "inner": {"preset": "open", "behind": "outer"}}
    )
    assert verdicts["inner"].as_configured, describe(list(verdicts.values()))


def test_knobs_on_an_open_router_are_rejected_or_ignored() -> None:
    try:
        verdicts = verify_dict({"lan": {"preset": "open", "hairpin": False, "mapping": "APDM"}})
    except ScenarioError:
        return  # rejecting the knobs is a fine fix too
    assert verdicts["lan"].as_configured, describe(list(verdicts.values()))

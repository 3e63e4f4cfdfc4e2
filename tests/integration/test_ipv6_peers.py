"""Peers and TURN on IPv6, on real namespaces: calls of both stacks between hosts that have
IPv6, directly and through coturn (across families too), and the rows' family columns saying
so.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from simnet.net.builder import Network, emulated_network
from simnet.net.plan import plan_network
from simnet.run.one_call import call_of, call_outcome, one_call, start_services
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import Scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _scenario(
    call: dict[str, Any],
    offerer: str = "aiortc",
    answerer: str = "aiortc",
    alice: str = "v6",
    bob: str = "v6",
    turn: dict[str, Any] | None = None,
    nat: str = "port-restricted-cone",
    with_turn: bool = True,
) -> Scenario:
    """alice behind network `a`, bob behind network `b`, each of the family given (an `open`
    router for v6, a NAT of preset `nat` otherwise), a signaling server and (`with_turn`) a
    TURN server on the internet."""

    def network(ip: str) -> dict[str, Any]:
        return {"preset": "open" if ip == "v6" else nat, "ip": ip}

    servers: dict[str, Any] = {"sig": {"kind": "signaling"}}
    if with_turn:
        servers["turn"] = {"kind": "turn", **(turn or {})}

    return scenario_from_dict(
        {
            "name": "ipv6-peers",
            "nats": {"a": network(alice), "b": network(bob)},
            "hosts": {
                "alice": {"behind": "a", "peer": offerer},
                "bob": {"behind": "b", "peer": answerer},
            },
            "servers": servers,
            "call": {"offerer": "alice", "answerer": "bob", "data_bytes": 100_000, **call},
        }
    )


async def _call(network: Network, scenario: Scenario) -> dict[str, Any]:
    call = call_of(scenario)
    services = await start_services(network, scenario, [call.offerer, call.answerer])
    try:
        offer, answer, error = await one_call(scenario, call, services, 0)
        return (await call_outcome(scenario, call, services, offer, answer, error)).columns()
    finally:
        await services.close()


def _run(scenario: Scenario) -> dict[str, Any]:
    plan = plan_network(scenario)
    with emulated_network(plan, label="test_ipv6_peers") as network:
        return asyncio.run(_call(network, scenario))


@pytest.mark.parametrize("offerer", ["aiortc", "chromium"])
def test_a_call_between_ipv6_hosts_goes_direct_over_ipv6(offerer: str) -> None:
    # an IPv6-only TURN server: its relays are IPv6 too, so nothing in the call is IPv4
    row = _run(_scenario({}, offerer=offerer, turn={"ip": "v6"}))
    assert row["connected"] and row["error"] is None, row["error_detail"]
    assert row["path"] == "direct"
    assert row["ip_family"] == "ipv6"
    assert row["local_candidates_ipv6"] >= 1 and row["remote_candidates_ipv6"] >= 1
    assert row["local_candidates_ipv4"] == 0 and row["remote_candidates_ipv4"] == 0
    assert row["via_nat64"] is False
    # the URLs were IPv6 literals in brackets, which aiortc's own parser refuses
    attempts = row["turn_attempts"]
    assert attempts and all(a["server"].startswith("[2001:db8::") for a in attempts)


def test_a_relayed_call_through_an_ipv6_only_turn_server() -> None:
    """A server that relays only IPv6 serves the stacks that request no family (it allocates
    IPv6 by default), over an IPv6 literal URL."""
    row = _run(_scenario({"ice_policy": "relay"}, turn={"ip": "v6"}))
    assert row["connected"] and row["error"] is None, row["error_detail"]
    assert row["path"] == "relay"
    assert row["ip_family"] == "ipv6"
    assert row["relay_server"].startswith("[2001:db8::")
    assert all(a["ok"] for a in row["turn_attempts"])


def test_chromium_on_dual_stack_homes_gathers_both_families_and_prefers_ipv6() -> None:
    """libwebrtc ranks IPv6 pairs first (RFC 8421): where both families connect, IPv6 wins."""
    kind = "chromium"
    row = _run(_scenario({}, offerer=kind, answerer=kind, alice="dual", bob="dual"))
    assert row["connected"] and row["error"] is None, row["error_detail"]
    assert row["path"] == "direct"
    assert row["ip_family"] == "ipv6"  # through both homes' IPv6 firewalls
    for side in ("local", "remote"):
        assert row[f"{side}_candidates_ipv4"] >= 1, row
        assert row[f"{side}_candidates_ipv6"] >= 1, row


def test_aiortc_on_dual_stack_homes_punches_through_both_ipv6_firewalls() -> None:
    """aioice gives host candidates of both families one priority and nominates the first pair
    that succeeds, so on homes where both families connect the family is a race (measured in
    docs/guides/ipv6.md). Here IPv4 cannot connect (two symmetric NATs, no TURN): the call must
    find the IPv6 pair through both stateful firewalls, which open only to what their own side
    sent."""
    row = _run(
        _scenario({}, alice="dual", bob="dual", nat="symmetric", with_turn=False),
    )
    assert row["connected"] and row["error"] is None, row["error_detail"]
    assert row["path"] == "direct"
    assert row["ip_family"] == "ipv6"
    for side in ("local", "remote"):
        assert row[f"{side}_candidates_ipv4"] >= 1, row
        assert row[f"{side}_candidates_ipv6"] >= 1, row


@pytest.mark.parametrize("kind", ["aiortc", "chromium"])
def test_an_ipv6_only_client_relays_to_an_ipv4_only_peer_across_families(kind: str) -> None:
    """The client reaches the dual-stack TURN server over IPv6 and gets an IPv4 relay (it asks
    for no family: RFC 6156's default), which pairs with the IPv4 peer's candidates."""
    row = _run(_scenario({}, offerer=kind, alice="v6", bob="v4"))
    assert row["connected"] and row["error"] is None, row["error_detail"]
    assert row["path"] == "relay"
    assert row["ip_family"] == "ipv4"
    assert row["local_candidate"] == "relay"  # the IPv6-only side's own relay
    assert row["local_candidates_ipv4"] >= 1  # its relays (one per TURN URL it was given)
    offerer = [a for a in row["turn_attempts"] if a["side"] == "offer"]
    assert any(a["ok"] and a["server"].startswith("[2001:db8::") for a in offerer)
    assert row["via_nat64"] is False  # no NAT64 on the way: the relay bridged the families


def test_simnets_turn_client_allocates_over_ipv6_and_gets_the_default_ipv4_relay() -> None:
    """`simnet.services.turn_client.allocate` opens its socket in the server address's family;
    a dual-stack coturn gives a client that asks for no family an IPv4 relay (RFC 6156), and a
    server relaying only IPv6 gives it an IPv6 one."""
    from ipaddress import ip_address

    from simnet.addresses import IPV6
    from simnet.services.coturn import TurnConfig, start_coturn
    from simnet.services.turn_client import allocate

    scenario = _scenario({})  # alice IPv6-only, the TURN server dual

    async def relays(network: Network) -> list[int]:
        server = network.plan.nodes["turn"].address_of(IPV6)
        assert server is not None
        versions = []
        for families in ((), (IPV6,)):
            handle = await start_coturn(network, "turn", TurnConfig(relay_families=families))
            try:
                user, password = handle.credentials()
                for transport in ("udp", "tcp"):
                    relay = await allocate(
                        network.ns("alice"), (str(server), 3478), user, password,
                        transport=transport,  # type: ignore[arg-type]
                    )  # fmt: skip
                    versions.append(ip_address(relay.relayed_address[0]).version)
                    await relay.close()
            finally:
                handle.stop()
        return versions

    with emulated_network(plan_network(scenario), label="test_ipv6_peers") as network:
        assert asyncio.run(relays(network)) == [4, 4, 6, 6]


@pytest.mark.parametrize("kind", ["aiortc", "chromium"])
def test_an_ipv6_only_carrier_reaches_an_ipv4_only_turn_server_by_name_only(kind: str) -> None:
    """Behind a NAT64 the server's IPv4 literal is useless and the call fails; its name, which
    the carrier's DNS64 answers with an address in the NAT64 prefix, carries the allocation
    through the NAT64 and the call relays, the row saying which side crossed it."""

    def scenario(urls: str) -> Scenario:
        return scenario_from_dict(
            {
                "name": "carrier-names",
                "nats": {
                    "carrier": {"ip": "v6", "nat64": True},
                    "home": {"preset": "port-restricted-cone"},
                },
                "hosts": {
                    "alice": {"behind": "carrier", "peer": kind},
                    "bob": {"behind": "home", "peer": kind},
                },
                "servers": {"turn": {"kind": "turn", "ip": "v4"}, "sig": {"kind": "signaling"}},
                "call": {
                    "offerer": "alice",
                    "answerer": "bob",
                    "data_bytes": 100_000,
                    "ice_urls": urls,
                    "timeouts": {"ice_s": 5},
                },
            }
        )

    named = _run(scenario("names"))
    assert named["connected"] and named["error"] is None, named["error_detail"]
    assert named["path"] == "relay" and named["local_candidate"] == "relay"
    assert named["ip_family"] == "ipv4"
    assert (named["offerer_via_nat64"], named["answerer_via_nat64"]) == (True, False)
    assert named["via_nat64"] is True
    literal = _run(scenario("literals"))
    assert not literal["connected"]
    assert literal["via_nat64"] is None  # no pair: nothing crossed

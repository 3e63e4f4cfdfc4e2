"""Peers and TURN on IPv6, on real namespaces: calls of both stacks between hosts that have
IPv6, directly and through coturn, and the rows' family columns saying so.

The networks are planned in IPv6 as tests/integration/test_ipv6_plan.py plans them (every
node IPv6 only): an `open` router's LAN and a host on the internet, with coturn and the
signaling server on IPv6.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from simnet.net.builder import Network, emulated_network
from simnet.net.plan import IPV6_ADDRESSING, plan_network
from simnet.run.one_call import call_of, call_outcome, one_call, start_services
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import Scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _scenario(call: dict[str, Any], offerer: str = "aiortc", answerer: str = "aiortc") -> Scenario:
    return scenario_from_dict(
        {
            "name": "ipv6-peers",
            "nats": {"isp": {"preset": "open"}},
            "hosts": {
                "alice": {"behind": "isp", "peer": offerer},
                "bob": {"behind": "internet", "peer": answerer},
            },
            "servers": {"turn": {"kind": "turn"}, "sig": {"kind": "signaling"}},
            "call": {"offerer": "alice", "answerer": "bob", "data_bytes": 100_000, **call},
        }
    )


async def _call(network: Network, scenario: Scenario) -> dict[str, Any]:
    call = call_of(scenario)
    services = await start_services(network, scenario, [call.offerer, call.answerer])
    try:
        offer, answer, error = await one_call(scenario, call, services, 0)
        return call_outcome(scenario, call, services, offer, answer, error).columns()
    finally:
        await services.close()


def _run_on_ipv6(scenario: Scenario) -> dict[str, Any]:
    plan = plan_network(scenario, addressing=IPV6_ADDRESSING)
    with emulated_network(plan, label="test_ipv6_peers") as network:
        return asyncio.run(_call(network, scenario))


@pytest.mark.parametrize("offerer", ["aiortc", "chromium"])
def test_a_call_between_ipv6_hosts_goes_direct_over_ipv6(offerer: str) -> None:
    row = _run_on_ipv6(_scenario({}, offerer=offerer))
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
    row = _run_on_ipv6(_scenario({"ice_policy": "relay"}))
    assert row["connected"] and row["error"] is None, row["error_detail"]
    assert row["path"] == "relay"
    assert row["ip_family"] == "ipv6"
    assert row["relay_server"].startswith("[2001:db8::")
    assert all(a["ok"] for a in row["turn_attempts"])

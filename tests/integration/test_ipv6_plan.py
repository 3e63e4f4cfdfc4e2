"""A network planned in IPv6 is built and carries traffic: the builder takes the plan's family
from its addresses (IPv6 turned on where a node has IPv6 addresses, routes and addresses added
in that family) and the NAT's ruleset is an `ip6` table.

Scenarios are IPv4 only (their IPv6 ranges are refused); this builds a plan of the IPv6
addressing directly, the way a later dual-stack plan will reach the builder. The NAT here is a
symmetric one: nftables 1.0.6 (Debian 12) aborts on the EIM/ADM state updates keyed by an IPv6
address (`ct original ip6 saddr . ct original proto-src`), see `simnet.net.nftables`.
"""

from __future__ import annotations

import select
import socket
from contextlib import ExitStack

import pytest

from simnet.addresses import IPV6
from simnet.net.builder import Network, apply_nft, emulated_network
from simnet.net.netns import entered, socket_in
from simnet.net.plan import IPV6_ADDRESSING, plan_network
from simnet.scenario.load import scenario_from_dict

WAIT_S = 5.0

NETWORK = {
    "name": "ipv6",
    "nats": {"isp": {"preset": "open"}, "home": {"preset": "symmetric"}},
    "hosts": {
        "carol": {"behind": "isp"},
        "alice": {"behind": "home"},
        "web": {"behind": "internet"},
    },
}


def arrivals(network: Network, senders: list[str], server: str, port: int) -> dict[str, str]:
    """Sender -> the source address `server` saw its datagrams come from."""
    with ExitStack() as stack:
        listener = stack.enter_context(
            socket_in(network.ns(server), socket.AF_INET6, socket.SOCK_DGRAM)
        )
        listener.bind(("::", port))
        for sender in senders:
            sock = stack.enter_context(
                socket_in(network.ns(sender), socket.AF_INET6, socket.SOCK_DGRAM)
            )
            for _ in range(3):
                sock.sendto(sender.encode(), (str(network.address(server)), port))
        seen: dict[str, str] = {}
        while select.select([listener], [], [], WAIT_S if len(seen) < len(senders) else 0.2)[0]:
            data, source = listener.recvfrom(64)
            seen[data.decode()] = source[0]
        return seen


@pytest.mark.integration
def test_an_ipv6_plan_is_built_routed_and_translated() -> None:
    plan = plan_network(scenario_from_dict(NETWORK), addressing=IPV6_ADDRESSING)
    assert plan.families == {IPV6}
    with emulated_network(plan, label="test_ipv6_plan") as net:
        seen = arrivals(net, ["carol", "alice"], "web", 3478)
        with entered(net.ns("home")):
            apply_nft("list table ip6 simnet", where="home")  # raises if it is not there
    assert seen["carol"] == str(net.address("carol"))  # routed: its own public address
    assert seen["alice"] == str(net.address("home"))  # translated to the NAT's WAN address

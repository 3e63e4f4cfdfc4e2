"""A scenario whose networks have IPv6 (`ip: dual`, `ip: v6`) is built and carries traffic in
both families: the builder takes each node's families from its addresses (IPv6 turned on where
a node has IPv6 addresses, routes and addresses added in that family), IPv6 is routed, never
translated, through nested routers and the core, and IPv4 is translated as ever.
"""

from __future__ import annotations

import select
import socket
from contextlib import ExitStack

import pytest

from simnet.addresses import IPV4, IPV6, Family, socket_family
from simnet.net.builder import Network, emulated_network
from simnet.net.netns import socket_in
from simnet.net.plan import plan_network
from simnet.scenario.load import scenario_from_dict

WAIT_S = 5.0

NETWORK = {
    "name": "ipv6",
    "nats": {
        "isp": {"preset": "open", "ip": "v6"},
        "home": {"ip": "v6", "behind": "isp"},
        "house": {"preset": "symmetric", "ip": "dual"},
    },
    "hosts": {
        "carol": {"behind": "isp"},
        "alice": {"behind": "home"},
        "dave": {"behind": "house"},
        "web": {"behind": "internet"},
    },
}


def arrivals(
    network: Network, senders: list[str], server: str, port: int, family: Family
) -> dict[str, str]:
    """Sender -> the source address `server` saw its datagrams come from, in `family`."""
    target = network.plan.nodes[server].address_of(family)
    assert target is not None
    with ExitStack() as stack:
        listener = stack.enter_context(
            socket_in(network.ns(server), socket_family(target), socket.SOCK_DGRAM)
        )
        listener.bind((str(target), port))
        for sender in senders:
            sock = stack.enter_context(
                socket_in(network.ns(sender), socket_family(target), socket.SOCK_DGRAM)
            )
            for _ in range(3):
                sock.sendto(sender.encode(), (str(target), port))
        seen: dict[str, str] = {}
        while select.select([listener], [], [], WAIT_S if len(seen) < len(senders) else 0.2)[0]:
            data, source = listener.recvfrom(64)
            seen[data.decode()] = source[0]
        return seen


@pytest.mark.integration
def test_ipv6_is_routed_through_nested_routers_and_ipv4_still_translated() -> None:
    plan = plan_network(scenario_from_dict(NETWORK))
    assert plan.families == {IPV4, IPV6}
    assert plan.nodes["alice"].families == {IPV6}
    assert plan.nodes["dave"].families == {IPV4, IPV6}
    with emulated_network(plan, label="test_ipv6_plan") as net:
        v6 = arrivals(net, ["carol", "alice", "dave"], "web", 3478, IPV6)
        v4 = arrivals(net, ["dave"], "web", 3479, IPV4)
    nodes = plan.nodes
    for host in ("carol", "alice", "dave"):  # routed: each host's own global address
        assert v6[host] == str(nodes[host].address_of(IPV6)), host
    assert v4["dave"] == str(nodes["house"].address_of(IPV4))  # translated

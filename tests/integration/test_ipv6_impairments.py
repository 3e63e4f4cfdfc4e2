"""A link that carries IPv6 is impaired in both families: a call over IPv6 on a delayed or lossy
link sees the delay and the loss an IPv4 one sees (else the IPv6 pair of a dual-stack call would
win on a lie). Measured with real sockets: a UDP echo's round trip in each family across a
delayed LAN member's link and a delayed internet host's link, and a link losing everything in
both families, while neighbour discovery keeps working (IPv6 is reachable at all)."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from ipaddress import ip_address

import pytest

from simnet.addresses import IPV4, IPV6, Family, socket_family
from simnet.net.builder import Network, emulated_network
from simnet.net.netns import socket_in
from simnet.net.plan import plan_network
from simnet.scenario.load import scenario_from_dict
from tests.solo import SOLO

pytestmark = [pytest.mark.integration, *SOLO]

DELAY_MS = 40  # each direction of each impaired link
NETWORK = {
    "name": "ipv6-impaired",
    "nats": {"home": {"ip": "dual"}},
    "hosts": {
        "alice": {"behind": "home", "link": {"delay_ms": DELAY_MS}},
        "carol": {"behind": "home"},
        "far": {"behind": "internet", "link": {"delay_ms": DELAY_MS}},
        "lossy": {"behind": "internet", "link": {"loss_pct": 100}},
        "web": {"behind": "internet"},
    },
}


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    plan = plan_network(scenario_from_dict(NETWORK))
    with emulated_network(plan, label="test_ipv6_impairments") as net:
        yield net


def round_trips(net: Network, client: str, server: str, family: Family, n: int = 5) -> list[float]:
    """Round-trip times (ms) of `n` UDP echoes from `client` to `server` in `family`."""
    target = net.plan.nodes[server].address_of(family)
    assert target is not None
    kind = socket_family(ip_address(target))
    times = []
    with ExitStack() as stack:
        echo = stack.enter_context(socket_in(net.ns(server), kind, socket.SOCK_DGRAM))
        echo.bind((str(target), 7000))
        sock = stack.enter_context(socket_in(net.ns(client), kind, socket.SOCK_DGRAM))
        for i in range(n):
            start = time.monotonic()
            sock.sendto(str(i).encode(), (str(target), 7000))
            if not select.select([echo], [], [], 2.0)[0]:
                continue
            data, source = echo.recvfrom(64)
            echo.sendto(data, source)
            if select.select([sock], [], [], 2.0)[0]:
                sock.recvfrom(64)
                times.append((time.monotonic() - start) * 1000)
    return times


@pytest.mark.parametrize("family", [IPV4, IPV6])
@pytest.mark.parametrize("client", ["alice", "far"])
def test_a_delayed_link_delays_both_families(network: Network, client: str, family: Family) -> None:
    rtts = round_trips(network, client, "web", family)
    assert len(rtts) == 5, f"IPv{family} echoes lost: {rtts}"
    assert min(rtts) >= 2 * DELAY_MS, rtts  # the link's delay, both ways
    control = round_trips(network, "carol", "web", family)  # same LAN, no impairment
    assert len(control) == 5 and max(control) < DELAY_MS, control


@pytest.mark.parametrize("family", [IPV4, IPV6])
def test_a_link_losing_everything_loses_both_families(network: Network, family: Family) -> None:
    assert round_trips(network, "lossy", "web", family, n=3) == []

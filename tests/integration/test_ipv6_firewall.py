"""A router's IPv6 side, proven with real sockets: IPv6 is routed untranslated to and from a
dual-stack home, its firewall lets in what RFC 6092 lets in (replies; from a contacted address
for address-dependent filtering; everything when open) and nothing else, a black-holed family
vanishes while the other still works, and `verify-nat` reports the IPv6 side as its own object.

Each refusal is measured next to a control on the same network that must get through, so a
broken network cannot pass for a strict firewall.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from ipaddress import ip_address

import pytest

from simnet.addresses import IPV4, IPV6, Family, socket_family
from simnet.net.builder import Network, emulated_network
from simnet.net.netns import socket_in
from simnet.net.plan import plan_network
from simnet.run.verify_nat import verify
from simnet.scenario.load import scenario_from_dict

pytestmark = pytest.mark.integration

REACH_TIMEOUT_S = 5.0  # for packets that must arrive: generous
BLOCKED_TIMEOUT_S = 1.0  # for packets that must not: how long we listen

NETWORK = {
    "name": "ipv6-firewall",
    "nats": {
        "apdf": {"ip": "dual"},
        "adf": {"ip": "dual", "v6_filtering": "address-dependent"},
        "open": {"ip": "dual", "v6_filtering": "open"},
        "nov4": {"ip": "dual", "v4": "blackhole"},
        "nov6": {"ip": "dual", "v6": "blackhole"},
    },
    "hosts": {
        "a-apdf": {"behind": "apdf"},
        "a-adf": {"behind": "adf"},
        "a-open": {"behind": "open"},
        "a-nov4": {"behind": "nov4"},
        "a-nov6": {"behind": "nov6"},
        "peer": {"behind": "internet"},
        "stranger": {"behind": "internet"},
    },
}
FILTERED = ("apdf", "adf", "open")


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    plan = plan_network(scenario_from_dict(NETWORK))
    with emulated_network(plan, label="test_ipv6_firewall") as net:
        yield net


def address(net: Network, node: str, family: Family) -> str:
    found = net.plan.nodes[node].address_of(family)
    assert found is not None, f"{node} has no IPv{family} address"
    return str(found)


def udp(stack: ExitStack, net: Network, node: str, family: Family, port: int) -> socket.socket:
    bound = address(net, node, family)
    sock = stack.enter_context(
        socket_in(net.ns(node), socket_family(ip_address(bound)), socket.SOCK_DGRAM)
    )
    sock.bind((bound, port))
    return sock


def arrived(sock: socket.socket, timeout: float) -> set[bytes]:
    """Every datagram `sock` receives until `timeout` passes without one."""
    seen: set[bytes] = set()
    while select.select([sock], [], [], timeout)[0]:
        seen.add(sock.recvfrom(256)[0])
        timeout = 0.2
    return seen


def probe_inbound(net: Network, host: str) -> set[str]:
    """`host` sends to peer:4000 in IPv6; then peer:4000, peer:4001 and a stranger (never
    contacted) send to `host`'s port. Which of them got in."""
    with ExitStack() as stack:
        inside = udp(stack, net, host, IPV6, 5000)
        peer = udp(stack, net, "peer", IPV6, 4000)
        peer_other_port = udp(stack, net, "peer", IPV6, 4001)
        stranger = udp(stack, net, "stranger", IPV6, 4000)
        inside.sendto(b"out", (address(net, "peer", IPV6), 4000))
        assert arrived(peer, REACH_TIMEOUT_S) == {b"out"}  # routed, not translated:
        target = (address(net, host, IPV6), 5000)
        for sock, label in ((peer, "reply"), (peer_other_port, "port"), (stranger, "stranger")):
            for _ in range(3):
                sock.sendto(label.encode(), target)
        return {d.decode() for d in arrived(inside, BLOCKED_TIMEOUT_S)}


@pytest.mark.parametrize(
    ("router", "expected"),
    [
        ("apdf", {"reply"}),
        ("adf", {"reply", "port"}),
        ("open", {"reply", "port", "stranger"}),
    ],
)
def test_the_ipv6_firewall_lets_in_what_its_filtering_says(
    network: Network, router: str, expected: set[str]
) -> None:
    assert probe_inbound(network, f"a-{router}") == expected


def test_an_unsolicited_packet_reaches_only_an_open_routers_host(network: Network) -> None:
    """No outbound packet first: only `open` lets a stranger in."""
    got = {}
    with ExitStack() as stack:
        stranger = udp(stack, network, "stranger", IPV6, 4100)
        inside = {r: udp(stack, network, f"a-{r}", IPV6, 5100) for r in FILTERED}
        for router in FILTERED:
            for _ in range(3):
                stranger.sendto(b"hello", (address(network, f"a-{router}", IPV6), 5100))
        for router, sock in inside.items():
            got[router] = arrived(sock, BLOCKED_TIMEOUT_S)
    assert got == {"apdf": set(), "adf": set(), "open": {b"hello"}}


def test_a_dual_stack_home_reaches_a_dual_server_over_both_families(network: Network) -> None:
    seen: dict[Family, set[bytes]] = {}
    for family in (IPV4, IPV6):
        with ExitStack() as stack:
            server = udp(stack, network, "peer", family, 4200)
            home = udp(stack, network, "a-apdf", family, 5200)
            home.sendto(b"hi", (address(network, "peer", family), 4200))
            assert select.select([server], [], [], REACH_TIMEOUT_S)[0], f"IPv{family} lost"
            data, source = server.recvfrom(64)
            assert data == b"hi"
            # IPv4 is translated to the router's address; IPv6 comes from the host itself
            router = "apdf" if family == IPV4 else "a-apdf"
            assert source[0] == address(network, router, family)
            server.sendto(b"back", source[:2])
            seen[family] = arrived(home, REACH_TIMEOUT_S)
    assert seen == {IPV4: {b"back"}, IPV6: {b"back"}}


@pytest.mark.parametrize(("router", "dropped"), [("nov4", IPV4), ("nov6", IPV6)])
def test_a_blackholed_family_gets_no_reply_while_the_other_does(
    network: Network, router: str, dropped: Family
) -> None:
    got: dict[Family, set[bytes]] = {}
    for family in (IPV4, IPV6):
        with ExitStack() as stack:
            server = udp(stack, network, "peer", family, 4300)
            home = udp(stack, network, f"a-{router}", family, 5300)
            for _ in range(3):
                home.sendto(b"hi", (address(network, "peer", family), 4300))
            got[family] = arrived(server, BLOCKED_TIMEOUT_S if family == dropped else 3.0)
    assert got[dropped] == set()
    assert got[IPV4 if dropped == IPV6 else IPV6] == {b"hi"}


def test_verify_nat_reports_the_ipv6_side_as_its_own_object() -> None:
    scenario = scenario_from_dict(
        {
            "name": "dual-verify",
            "nats": {
                "home": {"ip": "dual", "v6_filtering": "adf", "udp_timeout_s": 3},
                "mobile": {"ip": "v6"},
            },
        }
    )
    verdicts = {(v.nat, v.as_json()["family"]): v for v in verify(scenario, lifetime_max_s=6)}
    assert set(verdicts) == {("home", "ipv4"), ("home", "ipv6"), ("mobile", "ipv6")}
    for verdict in verdicts.values():
        assert verdict.as_configured, verdict.mismatches
    home6 = verdicts[("home", "ipv6")].as_json()
    assert home6["mapping"] == "none" and home6["translates"] is False
    assert home6["filtering"] == "address-dependent"
    lower, upper = home6["binding_lifetime_bounds_s"]  # type: ignore[misc]
    assert lower <= 3 <= upper
    assert verdicts[("mobile", "ipv6")].as_json()["filtering"] == "address-and-port-dependent"
    assert verdicts[("home", "ipv4")].as_json()["mapping"] == "endpoint-independent"

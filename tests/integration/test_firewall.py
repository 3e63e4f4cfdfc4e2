"""Firewalls and routing, proven by measurement with real sockets in the namespaces.

Why: a rule that is rendered but wrong (wrong hook, wrong interface name, wrong order) looks fine
in `nft list ruleset` and only shows when packets flow. So each test opens a listener in one
namespace and a client in another and checks what arrives, next to a control that must get
through on the same network, so that a silent failure cannot pass for a blocked one.
"""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from simnet.net.builder import Network, emulated_network
from simnet.net.netns import socket_in
from simnet.net.plan import plan_network
from simnet.scenario import load_scenario

REACH_TIMEOUT_S = 5.0  # for attempts that must succeed: generous
BLOCKED_TIMEOUT_S = 1.0  # for attempts that must not: how long we listen for a packet
PRIVATE = tuple(
    IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)

FIREWALLED = """\
nats:
  corp: {preset: full-cone, firewall: {block_udp: true, allow: ["tcp/443"]}}
  home: {preset: port-restricted-cone}
hosts:
  office: {behind: corp}
  alice: {behind: home}
  web: {behind: internet}
"""

BLOCKLIST = """\
nats:
  corp: {preset: full-cone, firewall: {block: [BLOCKED]}}
hosts:
  office: {behind: corp}
  web: {behind: internet}
  other: {behind: internet}
"""

OPEN_AND_NAT = """\
nats:
  isp: {preset: open}
  home: {preset: port-restricted-cone}
hosts:
  carol: {behind: isp}
  alice: {behind: home}
  web: {behind: internet}
"""


@contextmanager
def built(path: Path) -> Iterator[Network]:
    with emulated_network(plan_network(load_scenario(path)), label="test_firewall") as network:
        yield network


@dataclass
class Attempt:
    connected: bool
    error: str | None  # "timeout" for a silent drop, else the errno name
    seen_from: str | None  # the source address the listener saw, if anything arrived


def tcp_attempt(
    network: Network,
    client: str,
    server: str,
    port: int,
    to: IPv4Address | None = None,
    timeout: float = REACH_TIMEOUT_S,
) -> Attempt:
    """Connect from `client` to a listener in `server` (at `to`, default its address)."""
    target = str(to or network.address(server))
    with ExitStack() as stack:
        listener = stack.enter_context(socket_in(network.ns(server), type=socket.SOCK_STREAM))
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen(8)
        sock = stack.enter_context(socket_in(network.ns(client), type=socket.SOCK_STREAM))
        sock.settimeout(timeout)
        try:
            sock.connect((target, port))
            connected, error = True, None
        except TimeoutError:
            connected, error = False, "timeout"
        except OSError as exc:
            connected, error = False, errno_name(exc)
        # whatever reached the listener is in its accept queue by now
        seen_from = None
        if select.select([listener], [], [], timeout if connected else 0)[0]:
            accepted, (seen_from, _) = listener.accept()
            accepted.close()
        return Attempt(connected, error, seen_from)


def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc))


def udp_arrivals(network: Network, senders: list[str], server: str, port: int) -> set[str]:
    """Send datagrams from each sender to `server`; return the senders whose datagrams arrived."""
    with ExitStack() as stack:
        listener = stack.enter_context(socket_in(network.ns(server), type=socket.SOCK_DGRAM))
        listener.bind(("0.0.0.0", port))
        for sender in senders:
            sock = stack.enter_context(socket_in(network.ns(sender), type=socket.SOCK_DGRAM))
            for _ in range(5):
                sock.sendto(sender.encode(), (str(network.address(server)), port))
        arrived = set()
        # listen until the line has been quiet for BLOCKED_TIMEOUT_S
        while select.select([listener], [], [], BLOCKED_TIMEOUT_S)[0]:
            arrived.add(listener.recv(64).decode())
        return arrived


@pytest.mark.integration
def test_firewall_allows_only_tcp_443_and_blocks_udp(scenario_file) -> None:
    with built(scenario_file(FIREWALLED)) as net:
        corp_wan = str(net.address("corp"))

        https = tcp_attempt(net, "office", "web", 443)
        http = tcp_attempt(net, "office", "web", 80, timeout=BLOCKED_TIMEOUT_S)
        http_control = tcp_attempt(net, "alice", "web", 80)  # no firewall at home
        udp = udp_arrivals(net, ["office", "alice"], "web", 3478)

    assert https.connected, https
    assert https.seen_from == corp_wan  # through the NAT
    assert not http.connected and http.seen_from is None, http
    assert http_control.connected, http_control
    assert udp == {"alice"}  # office's datagrams never arrived, alice's did


@pytest.mark.integration
def test_firewall_blocklist_drops_one_public_host(scenario_file) -> None:
    # the plan assigns addresses in a fixed order; find web's to write the blocklist
    probe = plan_network(load_scenario(scenario_file(BLOCKLIST.replace("BLOCKED", ""))))
    blocked = probe.nodes["web"].address
    path = scenario_file(BLOCKLIST.replace("BLOCKED", f"{blocked}/32"), name="blocklist.yaml")

    with built(path) as net:
        assert net.address("web") == blocked
        to_web = tcp_attempt(net, "office", "web", 443, timeout=BLOCKED_TIMEOUT_S)
        to_other = tcp_attempt(net, "office", "other", 443)

    assert not to_web.connected and to_web.seen_from is None, to_web
    assert to_other.connected, to_other
    assert to_other.seen_from == str(net.address("corp"))


@pytest.mark.integration
def test_open_router_routes_its_public_lan_and_core_drops_private_addresses(
    scenario_file,
) -> None:
    with built(scenario_file(OPEN_AND_NAT)) as net:
        carol, alice, web = net.address("carol"), net.address("alice"), net.address("web")

        inbound_open = tcp_attempt(net, "web", "carol", 8080)
        outbound_open = tcp_attempt(net, "carol", "web", 8080)
        inbound_private = tcp_attempt(
            net, "web", "alice", 8080, to=alice, timeout=BLOCKED_TIMEOUT_S
        )
        outbound_nat = tcp_attempt(net, "alice", "web", 8080)  # control: alice is online

    assert not any(carol in n for n in PRIVATE), f"{carol} behind an open router is private"
    assert any(alice in n for n in PRIVATE), f"{alice} behind a NAT is public"
    # the open router forwards both ways without translating
    assert inbound_open.connected and inbound_open.seen_from == str(web), inbound_open
    assert outbound_open.connected and outbound_open.seen_from == str(carol), outbound_open
    # a private destination vanishes in the core, silently, as on the real internet
    assert inbound_private == Attempt(connected=False, error="timeout", seen_from=None)
    assert outbound_nat.connected and outbound_nat.seen_from == str(net.address("home"))

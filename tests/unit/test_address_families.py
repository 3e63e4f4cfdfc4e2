"""The plan, the builder's per-namespace settings, the nftables and coturn renderers, the link
rules and the services take addresses of either family and say them in that family's words;
scenarios stay IPv4 (an IPv6 range is refused with its own error, every other refusal keeps its
text). `test_rendered_network` pins the IPv4 output."""

from __future__ import annotations

import itertools
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)
from pathlib import Path

import pytest

from simnet.addresses import (
    IPV4,
    IPV6,
    default_route,
    host_network,
    interface,
    socket_family,
    url_host,
)
from simnet.errors import ScenarioError
from simnet.net import builder
from simnet.net.impair.rules import LinkTarget, queue_rules
from simnet.net.nftables import render_router, table_family
from simnet.net.plan import (
    CORE,
    IPV4_ADDRESSING,
    IPV6_ADDRESSING,
    Node,
    Role,
    RouterPlan,
    plan_network,
)
from simnet.scenario.load import load_scenario, scenario_from_dict
from simnet.scenario.model import FirewallSpec, LinkSpec
from simnet.scenario.nat import Filtering, Mapping, NatBehavior, PortAllocation
from simnet.services.coturn import (
    IPV6_PUBLIC_PEER_RANGES,
    CoturnFiles,
    TurnConfig,
    turnserver_argv,
)
from simnet.services.signaling import SignalingServer

DOCUMENTATION_V6 = IPv6Network("2001:db8::/32")
FILES = CoturnFiles(Path("/tmp/simnet-test-coturn"))

NETWORK = {
    "name": "families",
    "nats": {
        "home": {"preset": "port-restricted-cone"},
        "office": {"preset": "open"},
        "phone": {"preset": "cgnat"},
    },
    "hosts": {
        "alice": {"behind": "home"},
        "bob": {"behind": "office"},
        "carol": {"behind": "phone"},
        "dave": {"behind": "internet"},
    },
    "servers": {"turn": {"kind": "turn", "addresses": 2}, "signaling": {"kind": "signaling"}},
}


# --- helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "route", "host", "family", "url"),
    [
        ("192.0.2.10", "0.0.0.0/0", "192.0.2.10/32", 2, "192.0.2.10"),
        ("2001:db8::a", "::/0", "2001:db8::a/128", 10, "[2001:db8::a]"),
    ],
)
def test_helpers_speak_the_family_of_the_address(
    address: str, route: str, host: str, family: int, url: str
) -> None:
    ip = ip_address(address)
    assert default_route(ip.version) == ip_network(route)
    assert host_network(ip) == ip_network(host)
    assert str(interface(ip)) == host
    assert socket_family(ip) == family
    assert url_host(ip) == url


# --- the plan ------------------------------------------------------------------------------


def test_an_ipv6_plan_takes_its_addresses_from_the_documentation_and_ula_ranges() -> None:
    plan = plan_network(scenario_from_dict(NETWORK), addressing=IPV6_ADDRESSING)
    nodes = plan.nodes
    assert plan.families == {IPV6}
    assert all(node.families == {IPV6} for node in nodes.values())
    # public nodes: one /128 each from their 2001:db8::/32 pool, numbered from ::a
    assert nodes["turn"].all_addresses() == [
        IPv6Address("2001:db8::a"),
        IPv6Address("2001:db8::b"),
    ]
    assert nodes["dave"].address == IPv6Address("2001:db8:0:2::a")
    assert nodes["home"].addresses["wan"] == [IPv6Interface("2001:db8:0:1::a/128")]
    for name in ("turn", "dave", "home", "office", "phone-carrier"):
        assert nodes[name].address in DOCUMENTATION_V6
    # every public node reaches the core on-link and routes everything through it
    assert [str(r.dst) for r in nodes["dave"].routes] == ["2001:db8::1/128", "::/0"]
    assert nodes["dave"].routes[1].via == IPv6Address("2001:db8::1")
    # LANs: a /64 each, public behind an open router, unique local behind a NAT
    home, office = nodes["home"].router, nodes["office"].router
    carrier = nodes["phone-carrier"].router
    assert home is not None and office is not None and carrier is not None
    assert home.lan == IPv6Network("fd00:168:0:1::/64")
    assert office.lan == IPv6Network("2001:db8:1::/64")
    assert carrier.lan == IPv6Network("fd00:64::/64")
    assert nodes["alice"].addresses["eth0"] == [IPv6Interface("fd00:168:0:1::a/64")]
    assert nodes["alice"].routes[0].via == IPv6Address("fd00:168:0:1::1")
    # the core drops unique local and unassigned destinations, and routes the open LAN
    core = {str(r.dst): r for r in nodes[CORE].routes}
    assert core["fc00::/7"].blackhole and core["::/0"].blackhole
    assert core["2001:db8:1::/64"].via == office.wan_address


def test_an_ipv4_plan_has_ipv4_only() -> None:
    plan = plan_network(scenario_from_dict(NETWORK))
    assert plan.families == {IPV4}
    assert plan.nodes["dave"].address == IPv4Address("203.0.113.10")
    assert IPV4_ADDRESSING.family == IPV4 and IPV6_ADDRESSING.family == IPV6


def test_a_lan_of_the_other_family_than_the_plan_is_refused() -> None:
    scenario = scenario_from_dict({"nats": {"home": {"lan": "10.20.0.0/24"}}})
    with pytest.raises(ScenarioError, match=r"10\.20\.0\.0/24 is an IPv4 range.*in IPv6"):
        plan_network(scenario, addressing=IPV6_ADDRESSING)


# --- the builder ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "role", "expected"),
    [
        (
            "192.0.2.10/32",
            Role.SERVER,
            {
                "net.ipv6.conf.all.disable_ipv6": 1,
                "net.ipv6.conf.default.disable_ipv6": 1,
                "net.ipv4.ip_forward": 0,
            },
        ),
        (
            "2001:db8::a/128",
            Role.SERVER,
            {
                "net.ipv6.conf.all.disable_ipv6": 0,
                "net.ipv6.conf.default.disable_ipv6": 0,
                "net.ipv4.ip_forward": 0,
                "net.ipv6.conf.all.forwarding": 0,
                "net.ipv6.conf.default.accept_dad": 0,
            },
        ),
        (
            "2001:db8:0:1::a/128",
            Role.ROUTER,
            {
                "net.ipv6.conf.all.disable_ipv6": 0,
                "net.ipv4.ip_forward": 1,
                "net.ipv6.conf.all.forwarding": 1,
            },
        ),
    ],
)
def test_a_namespace_has_ipv6_on_only_when_its_node_has_ipv6_addresses(
    monkeypatch: pytest.MonkeyPatch, address: str, role: Role, expected: dict[str, int]
) -> None:
    written: dict[str, int] = {}
    monkeypatch.setattr(builder.netns, "write_sysctl", lambda k, v: written.__setitem__(k, v))
    builder._base_sysctls(Node("n", role, addresses={"wan": [ip_interface(address)]}))
    for key, value in expected.items():
        assert written[key] == value
    if IPV6 not in {ip_interface(address).version}:
        assert not any(k.startswith("net.ipv6") and "disable_ipv6" not in k for k in written)


# --- nftables ------------------------------------------------------------------------------

BEHAVIOURS = [
    NatBehavior(mapping=m, filtering=f, port_allocation=p, hairpin=True)
    for m in Mapping
    for f in Filtering
    for p in PortAllocation
]


@pytest.mark.parametrize(
    "behavior",
    BEHAVIOURS,
    ids=[f"{b.mapping.name}-{b.filtering.name}-{b.port_allocation.name}" for b in BEHAVIOURS],
)
def test_an_ipv6_nat_is_written_in_ip6_words(behavior: NatBehavior) -> None:
    wan, lan = IPv6Address("2001:db8:0:1::a"), IPv6Network("fd00:168:0:1::/64")
    rules = render_router(RouterPlan(behavior, wan, lan, None))
    assert rules.startswith("table ip6 simnet {")
    assert " ip " not in rules and "ipv4_addr" not in rules and "icmp type" not in rules
    assert "snat ip6 to [2001:db8:0:1::a]" in rules
    assert "icmpv6 type echo-request" in rules
    assert "ct original ip6 saddr" in rules and "ct reply ip6 saddr" in rules
    assert f"ip6 saddr {lan} jump translate" in rules and f"ip6 daddr {wan} udp dport" in rules
    if behavior.mapping is not Mapping.APDM or behavior.filtering is Filtering.ADF:
        assert "ipv6_addr" in rules


def test_the_ipv4_nat_keeps_its_ip_words() -> None:
    behavior = NatBehavior(mapping=Mapping.ADM, filtering=Filtering.ADF)
    rules = render_router(
        RouterPlan(behavior, IPv4Address("198.51.100.10"), IPv4Network("192.168.1.0/24"), None)
    )
    assert rules.startswith("table ip simnet {") and "ip6" not in rules and "icmpv6" not in rules
    assert "snat ip to 198.51.100.10" in rules and "ipv4_addr . inet_service . ipv4_addr" in rules


def test_a_firewall_blocks_each_family_with_its_own_match_in_an_inet_table() -> None:
    # the scenario model refuses IPv6 ranges for now; the renderer already takes them
    firewall = FirewallSpec.model_construct(
        block_udp=False,
        allow=[],
        block=[IPv4Network("10.9.0.0/16"), IPv6Network("2001:db8:9::/48")],
    )
    router = RouterPlan(
        NatBehavior(), IPv4Address("198.51.100.10"), IPv4Network("192.168.1.0/24"), firewall
    )
    assert table_family(router) == "inet"
    rules = render_router(router)
    assert rules.startswith("table inet simnet {")
    assert "    ip daddr { 10.9.0.0/16 } drop" in rules
    assert "    ip6 daddr { 2001:db8:9::/48 } drop" in rules
    assert "    ip6 saddr { 2001:db8:9::/48 } drop" in rules


# --- coturn --------------------------------------------------------------------------------


def test_coturn_listens_relays_and_admits_peers_in_ipv6() -> None:
    address = IPv6Address("2001:db8::a")
    config = TurnConfig(listening_ips=(address,), allowed_peers=IPV6_PUBLIC_PEER_RANGES)
    argv = turnserver_argv(config, FILES)
    pairs = list(itertools.pairwise(argv))
    assert ("--listening-ip", "2001:db8::a") in pairs
    assert ("--relay-ip", "2001:db8::a") in pairs
    assert ("--aux-server", "[2001:db8::a]:443") in pairs
    assert "--allowed-peer-ip=2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff" in argv


def test_a_dual_stack_coturn_has_a_line_per_address() -> None:
    v4, v6 = IPv4Address("192.0.2.10"), IPv6Address("2001:db8::a")
    argv = turnserver_argv(TurnConfig(listening_ips=(v4, v6), external_ip=None), FILES)
    listening = [b for a, b in itertools.pairwise(argv) if a == "--listening-ip"]
    aux = [b for a, b in itertools.pairwise(argv) if a == "--aux-server"]
    assert listening == ["192.0.2.10", "2001:db8::a"]
    assert aux == ["192.0.2.10:443", "[2001:db8::a]:443"]


# --- link rules and services ---------------------------------------------------------------


def test_link_rules_exclude_an_ipv6_gateway_as_a_128() -> None:
    target = LinkTarget(
        node="alice",
        a_ns="ns-a",
        a_if="eth0",
        b_ns="ns-b",
        b_if="l1",
        spec=LinkSpec(delay_ms=10),
        b_bridge="lan",
        lan=IPv6Network("fd00:168:0:1::/64"),
        gateway=IPv6Address("fd00:168:0:1::1"),
    )
    rules = queue_rules([target], {"alice": "02:00:00:00:00:01"}, {"alice": ("up",)})["ns-a"]
    assert "-d fd00:168:0:1::1/128 -j RETURN" in rules
    assert "-d fd00:168:0:1::/64 -j NFQUEUE" in rules


def test_signaling_urls_bracket_an_ipv6_host() -> None:
    server = SignalingServer("ns", IPv6Address("2001:db8::c"), port=443)
    assert server.base_url == "http://[2001:db8::c]:443"
    assert server.url("ws", "room", "alice") == "ws://[2001:db8::c]:443/ws/room/alice"
    assert SignalingServer("ns", IPv4Address("192.0.2.12")).base_url == "http://192.0.2.12:8080"


# --- the scenario's address fields ---------------------------------------------------------


def _load(tmp_path: Path, field: str, value: str) -> ScenarioError:
    path = tmp_path / "s.yaml"
    path.write_text(f"nats:\n  home:\n    {field.format(value)}\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return caught.value


FIELDS = ["firewall: {{block: ['{}']}}", "lan: '{}'"]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", ["fd00::/64", "2001:db8::/32", "::/0"])
def test_an_ipv6_range_is_refused_as_not_supported_yet(
    tmp_path: Path, field: str, value: str
) -> None:
    exc = _load(tmp_path, field, value)
    assert f"{value}: IPv6 ranges are not supported yet" in exc.message
    assert "use an IPv4 range" in exc.message


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", ["300.1.1.0/24", "192.168.1.1/24", "10.0.0.0/33", "abc"])
def test_what_is_no_range_keeps_its_error(tmp_path: Path, field: str, value: str) -> None:
    exc = _load(tmp_path, field, value)
    assert f"Input is not a valid IPv4 network (got '{value}')" in exc.message


def test_the_ipv4_ranges_are_still_taken(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "nats:\n  home:\n    lan: 10.20.0.0/24\n    firewall: {block: [8.8.8.0/24]}\n",
        encoding="utf-8",
    )
    nat = load_scenario(path).nats["home"]
    assert nat.lan == IPv4Network("10.20.0.0/24")
    assert nat.firewall is not None and nat.firewall.block == [IPv4Network("8.8.8.0/24")]

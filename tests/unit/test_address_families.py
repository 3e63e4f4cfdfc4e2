"""The plan, the builder's per-namespace settings, the nftables and coturn renderers, the link
rules and the services take addresses of either family and say them in that family's words; a
scenario's `ip:` knobs give its networks IPv6 (`lan:` stays the IPv4 range, every other refusal
keeps its text). `test_rendered_network` pins the IPv4 output."""

from __future__ import annotations

import itertools
from dataclasses import replace
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
from simnet.net.impair.rules import LinkTarget, egress_chain, queue_rules
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
from simnet.scenario.model import FirewallSpec, LinkSpec, Scenario
from simnet.scenario.nat import Filtering, Mapping, NatBehavior, PortAllocation
from simnet.services.coturn import (
    IPV6_PUBLIC_PEER_RANGES,
    CoturnFiles,
    TurnConfig,
    turnserver_argv,
)
from simnet.services.signaling import SignalingServer
from tests.unit.nat_behaviours import EVERY_BEHAVIOUR

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


def _all(ip: str) -> dict[str, object]:
    """NETWORK with every NAT's users getting `ip` (an IPv6-only one without a NAT preset: it
    has no IPv4 to translate)."""
    nats: dict[str, dict[str, str]] = {}
    for name, spec in NETWORK["nats"].items():  # type: ignore[attr-defined]
        keep = ip != "v6" or spec["preset"] in ("open", "cgnat")
        nats[name] = {**(spec if keep else {}), "ip": ip}
    return {**NETWORK, "nats": nats}


def test_an_ipv6_only_plan_takes_its_addresses_from_the_documentation_range() -> None:
    plan = plan_network(scenario_from_dict(_all("v6")))
    nodes = plan.nodes
    assert plan.families == {IPV4, IPV6}  # the internet carries both; the networks IPv6 only
    for name in ("home", "office", "phone", "phone-carrier", "alice", "bob", "carol"):
        assert nodes[name].families == {IPV6}, name
    assert nodes["turn"].families == nodes["dave"].families == {IPV4, IPV6}
    # public nodes: one /128 per family each from their pool, numbered from ::a
    assert nodes["turn"].all_addresses(IPV6) == [
        IPv6Address("2001:db8::a"),
        IPv6Address("2001:db8::b"),
    ]
    assert nodes["turn"].address == IPv4Address("192.0.2.10")  # the primary: IPv4 first
    assert nodes["dave"].address_of(IPV6) == IPv6Address("2001:db8:0:2::a")
    assert nodes["home"].addresses["wan"] == [IPv6Interface("2001:db8:0:1::a/128")]
    for node in nodes.values():
        for address in node.all_addresses(IPV6):
            assert address in DOCUMENTATION_V6
    # every public node reaches the core on-link and routes everything through it
    assert [str(r.dst) for r in nodes["dave"].routes] == [
        "192.0.2.1/32",
        "0.0.0.0/0",
        "2001:db8::1/128",
        "::/0",
    ]
    assert nodes["dave"].routes[3].via == IPv6Address("2001:db8::1")
    # LANs: a global /64 each, from the pool of the router's kind
    home, office = nodes["home"].router, nodes["office"].router
    carrier = nodes["phone-carrier"].router
    assert home is not None and office is not None and carrier is not None
    assert home.lan == home.lan6 == IPv6Network("2001:db8:3:1::/64")
    assert office.lan6 == IPv6Network("2001:db8:1::/64")
    assert carrier.lan6 == IPv6Network("2001:db8:2::/64")
    assert home.families == {IPV6} and not home.behavior.translates
    assert nodes["alice"].addresses["eth0"] == [IPv6Interface("2001:db8:3:1::a/64")]
    assert nodes["alice"].routes[0].via == IPv6Address("2001:db8:3:1::1")
    # IPv6 is not translated: the core routes every LAN, the carrier its home's
    core = {str(r.dst): r for r in nodes[CORE].routes}
    assert core["fc00::/7"].blackhole and core["::/0"].blackhole
    assert core["2001:db8:1::/64"].via == office.wan6
    assert core["2001:db8:3:1::/64"].via == home.wan6
    phone = nodes["phone"].router
    assert phone is not None and phone.lan6 is not None
    assert core[str(phone.lan6)].via == carrier.wan6
    assert {str(r.dst): r.via for r in nodes["phone-carrier"].routes}[str(phone.lan6)] == (
        phone.wan6
    )
    assert nodes["alice"].resolvers == (IPv6Address("2001:db8::1"),)


def test_a_dual_plan_gives_every_network_both_families() -> None:
    plan = plan_network(scenario_from_dict(_all("dual")))
    nodes = plan.nodes
    home = nodes["home"].router
    assert home is not None
    assert home.lan == IPv4Network("192.168.1.0/24") and home.lan6 == IPv6Network(
        "2001:db8:3:1::/64"
    )
    assert home.wan_address == IPv4Address("198.51.100.10") and home.behavior.translates
    assert nodes["alice"].addresses["eth0"] == [
        ip_interface("192.168.1.10/24"),
        ip_interface("2001:db8:3:1::a/64"),
    ]
    assert nodes["alice"].address == IPv4Address("192.168.1.10")
    assert nodes["alice"].resolvers == (IPv4Address("192.0.2.1"), IPv6Address("2001:db8::1"))
    # the IPv4 side is planned as in an IPv4-only network
    v4 = plan_network(scenario_from_dict(NETWORK))
    for name, node in v4.nodes.items():
        assert [a for a in nodes[name].all_addresses(IPV4)] == node.all_addresses(), name


def test_an_ipv4_plan_has_ipv4_only() -> None:
    plan = plan_network(scenario_from_dict(NETWORK))
    assert plan.families == {IPV4}
    assert plan.nodes["dave"].address == IPv4Address("203.0.113.10")
    assert IPV4_ADDRESSING.family == IPV4 and IPV6_ADDRESSING.family == IPV6
    assert plan.nodes["alice"].resolvers == (IPv4Address("192.0.2.1"),)


def test_a_nat64_carrier_gets_a_prefix_a_pool_and_is_its_users_resolver() -> None:
    scenario = scenario_from_dict(
        {
            "nats": {
                "mobile": {"ip": "v6", "nat64": True},
                "mobile2": {"ip": "v6", "nat64": True, "preset": "cgn"},
            },
            "hosts": {"alice": {"behind": "mobile"}, "bob": {"behind": "mobile2"}},
        }
    )
    plan = plan_network(scenario)
    mobile, mobile2 = plan.nodes["mobile"].router, plan.nodes["mobile2"].router
    assert mobile is not None and mobile2 is not None
    assert mobile.nat64_prefix == IPv6Network("2001:db8:64::/96")
    assert mobile2.nat64_prefix == IPv6Network("2001:db8:64:1::/96")
    assert mobile.nat64_pool == IPv4Network("100.127.255.0/24")
    assert mobile2.nat64_pool == IPv4Network("100.127.254.0/24")
    # its IPv4 side: symmetric with random ports unless a preset says otherwise
    assert mobile.behavior.mapping is Mapping.APDM
    assert mobile.behavior.port_allocation is PortAllocation.RANDOM
    assert mobile2.behavior.mapping is Mapping.EIM
    # an IPv4 WAN for the translated traffic, an IPv6-only LAN from the carriers' range
    assert mobile.wan_address == IPv4Address("198.51.100.10") and mobile.wan6 is not None
    assert mobile.lan == mobile.lan6 == IPv6Network("2001:db8:2::/64")
    assert plan.nodes["alice"].families == {IPV6}
    assert plan.nodes["alice"].resolvers == (IPv6Address("2001:db8:2::1"),)
    assert mobile.dns64 == IPv6Address("2001:db8:2::1")


def test_a_scenario_lan6_is_kept_and_skipped_by_the_planned_ones() -> None:
    scenario = scenario_from_dict(
        {
            "nats": {
                "a": {"ip": "dual", "lan6": "2001:db8:3:1::/64"},
                "b": {"ip": "dual"},
            },
        }
    )
    plan = plan_network(scenario)
    a, b = plan.nodes["a"].router, plan.nodes["b"].router
    assert a is not None and b is not None
    assert a.lan6 == IPv6Network("2001:db8:3:1::/64")
    assert b.lan6 == IPv6Network("2001:db8:3:2::/64")


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


@pytest.mark.parametrize(
    "behavior",
    EVERY_BEHAVIOUR,
    ids=[f"{b.mapping.name}-{b.filtering.name}-{b.port_allocation.name}" for b in EVERY_BEHAVIOUR],
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


def test_link_rules_of_an_ipv6_lan_member_go_to_ip6tables_with_its_64() -> None:
    target = LinkTarget(
        node="alice",
        a_ns="ns-a",
        a_if="eth0",
        b_ns="ns-b",
        b_if="l1",
        spec=LinkSpec(delay_ms=10, loss_pct=1, duplicate_pct=1),
        b_bridge="lan",
        lan=IPv4Network("192.168.1.0/24"),
        gateway=IPv4Address("192.168.1.1"),
        families=frozenset({IPV4, IPV6}),
        lan6=IPv6Network("2001:db8:3:1::/64"),
        gateway6=IPv6Address("2001:db8:3:1::1"),
    )
    macs, fed = {"alice": "02:00:00:00:00:01"}, {"alice": ("up",)}
    v4 = queue_rules([target], macs, fed)["ns-a"]
    v6 = queue_rules([target], macs, fed, family=IPV6)["ns-a"]
    assert "-d 192.168.1.1/32 -j RETURN" in v4 and "2001:db8" not in v4 and "icmpv6" not in v4
    assert "-d 2001:db8:3:1::1/128 -j RETURN" in v6
    assert "-d 2001:db8:3:1::/64 -j NFQUEUE" in v6
    # neighbour discovery first, left alone as ARP is
    assert v6.index("--icmpv6-type neighbour-solicitation -j RETURN") < v6.index("NFQUEUE")
    chain = egress_chain(replace(target, spec=LinkSpec(loss_pct=1, duplicate_pct=1)), "up")
    assert "meta protocol { ip, ip6 } numgen" in chain
    assert "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept" in chain
    ipv4_only = replace(target, families=frozenset({IPV4}), spec=LinkSpec(loss_pct=1))
    assert "meta protocol ip numgen" in egress_chain(ipv4_only, "up")
    assert queue_rules([ipv4_only], macs, fed, family=IPV6) == {}


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


@pytest.mark.parametrize("value", ["fd00::/64", "2001:db8::/32", "::/0"])
def test_an_ipv6_lan_is_refused_as_the_ipv4_range(tmp_path: Path, value: str) -> None:
    exc = _load(tmp_path, "lan: '{}'", value)
    assert f"{value}: `lan:` is the LAN's IPv4 range; give an IPv6 LAN as `lan6:`" in exc.message


@pytest.mark.parametrize("value", ["fd00::/64", "2001:db8::/32"])
def test_an_ipv6_block_on_an_ipv4_network_is_refused(tmp_path: Path, value: str) -> None:
    exc = _load(tmp_path, "firewall: {{block: ['{}']}}", value)
    assert "an IPv6 knob on a network whose users get IPv4 only" in exc.message


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


def test_a_scenario_with_families_reads_back_as_itself() -> None:
    """Written out whole and read back (a template's copies, a cluster's workers), a network
    with IPv6 and a NAT64 is the same: no default reads as a knob the file did not set."""
    scenario = scenario_from_dict(
        {
            "nats": {"m": {"ip": "v6"}, "n": {"ip": "v6", "nat64": True}},
            "hosts": {"a": {"behind": "m", "count": 2, "own_nat": True}},
        }
    )
    again = Scenario.model_validate(scenario.model_dump())
    assert again.routers() == scenario.routers()
    assert again.routers()[1].behavior.mapping is Mapping.APDM  # the NAT64's default


def test_servers_take_the_internets_families_unless_told_and_relay_in_their_own() -> None:
    scenario = scenario_from_dict(
        {
            "nats": {"home": {"ip": "dual"}},
            "servers": {
                "turn": {"kind": "turn"},
                "old": {"kind": "turn", "ip": "v4"},
                "new": {"kind": "turn", "relay_families": ["ipv6"]},
            },
        }
    )
    internet = scenario.internet_families
    assert internet == {IPV4, IPV6}
    servers = scenario.servers
    assert servers["turn"].relay_families_in(internet) == {IPV4, IPV6}
    assert servers["old"].relay_families_in(internet) == {IPV4}
    assert servers["new"].relay_families_in(internet) == {IPV6}
    plan = plan_network(scenario)
    assert plan.nodes["old"].families == {IPV4} and plan.nodes["new"].families == {IPV4, IPV6}
    # without a network asking for IPv6, everything is IPv4 only, servers included
    v4 = scenario_from_dict({"servers": {"turn": {"kind": "turn"}}})
    assert v4.internet_families == {IPV4}
    assert v4.servers["turn"].relay_families_in(v4.internet_families) == {IPV4}

"""STUN/TURN URLs of both families: written with IPv6 literals in brackets, parsed back (by
simnet and, through the adapter, by aiortc), handed to each peer for the families its host has,
resolved names ordered as `getaddrinfo` orders them, and coturn relaying the families it is
told to."""

from __future__ import annotations

import itertools
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest

from simnet.addresses import IPV4, IPV6
from simnet.peer.aiortc.aioice_adapter import accept_ip_literals, used_turn_url
from simnet.peer.aiortc.resolve import ordered, resolved_servers
from simnet.peer.iceurl import IceUrl
from simnet.peer.protocol import IceServer
from simnet.run.one_call import server_hosts, turn_url
from simnet.scenario.model import TURN_LISTEN_PORTS, CallSpec
from simnet.services.coturn import CoturnFiles, TurnConfig, turnserver_argv

V4 = IPv4Address("192.0.2.10")
V6 = IPv6Address("2001:db8::a")
FILES = CoturnFiles(Path("/tmp/simnet-test-coturn"))


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("turn:[2001:db8::a]:3478?transport=udp", ("turn", "2001:db8::a", 3478, "udp")),
        ("turns:[2001:db8::a]:443?transport=tcp", ("turns", "2001:db8::a", 443, "tcp")),
        ("turn:[2001:db8::a]", ("turn", "2001:db8::a", 3478, "udp")),
        ("stun:[2001:db8::a]:3478", ("stun", "2001:db8::a", 3478, None)),
        ("turn:192.0.2.10:3478?transport=tcp", ("turn", "192.0.2.10", 3478, "tcp")),
        ("turn:turn.simnet.test:3478", ("turn", "turn.simnet.test", 3478, "udp")),
        ("turns:turn.simnet.test", ("turns", "turn.simnet.test", 5349, "tcp")),
    ],
)
def test_urls_of_either_family_and_names_parse(
    url: str, parts: tuple[str, str, int, str | None]
) -> None:
    parsed = IceUrl.parse(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.transport) == parts


@pytest.mark.parametrize(
    "url",
    [
        "turn:2001:db8::a:3478",  # an IPv6 literal without brackets
        "turn:[192.0.2.10]:3478",  # brackets hold IPv6 only
        "turn:[2001:db8::a:3478",
        "stun:[2001:db8::a]:3478?transport=udp",  # STUN has no transport
        "turn:[2001:db8::a]:70000",
        "http://[2001:db8::a]:3478",
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        IceUrl.parse(url)


def test_urls_are_written_with_ipv6_literals_in_brackets_and_read_back() -> None:
    assert turn_url(V6, "udp", 3478) == "turn:[2001:db8::a]:3478?transport=udp"
    assert turn_url(V6, "tls", 5349) == "turns:[2001:db8::a]:5349?transport=tcp"
    assert turn_url(V4, "tcp", 443) == "turn:192.0.2.10:443?transport=tcp"  # as IPv4 always was
    assert turn_url("turn.simnet.test", "udp", 3478) == "turn:turn.simnet.test:3478?transport=udp"
    for host, transport in itertools.product((V4, V6, "turn.simnet.test"), ("udp", "tcp", "tls")):
        url = turn_url(host, transport, TURN_LISTEN_PORTS[transport][0])
        assert str(IceUrl.parse(url)) == url
        assert IceUrl.parse(url).host == str(host)


def test_aiortc_takes_an_ipv6_literal_once_the_adapter_lets_it() -> None:
    from aiortc.rtcconfiguration import RTCIceServer
    from aiortc.rtcicetransport import connection_kwargs

    accept_ip_literals()
    servers = [
        RTCIceServer(urls=["stun:[2001:db8::a]:3478"]),
        RTCIceServer(urls=["turn:[2001:db8::a]:3478?transport=udp"], username="u", credential="p"),
    ]
    kwargs = connection_kwargs(servers)
    assert kwargs["stun_server"] == ("2001:db8::a", 3478)  # the tuple aioice connects to
    assert kwargs["turn_server"] == ("2001:db8::a", 3478)
    assert kwargs["turn_transport"] == "udp" and kwargs["turn_ssl"] is False
    ipv4 = connection_kwargs([RTCIceServer(urls=["turns:192.0.2.10:443?transport=tcp"])])
    assert ipv4["turn_server"] == ("192.0.2.10", 443) and ipv4["turn_ssl"] is True
    url = "turn:[2001:db8::a]:3478?transport=tcp"
    assert used_turn_url([IceServer(urls=[url], username="u", credential="p")]) == url


def _literals(client: set[int], addresses: tuple[object, ...] = (V4, V6)) -> list[object]:
    call = CallSpec()
    return server_hosts(call, "turn", addresses, frozenset(client))  # type: ignore[arg-type]


def test_each_client_gets_the_literals_of_the_families_it_has() -> None:
    assert _literals({IPV4}) == [V4]
    assert _literals({IPV6}) == [V6]  # never only IPv4 literals for an IPv6-only host
    assert _literals({IPV4, IPV6}) == [V4, V6]
    second_v4 = IPv4Address("192.0.2.11")
    assert _literals({IPV4, IPV6}, (V6, V4, second_v4)) == [V4, V6]  # one of each, IPv4 first
    # no family in common: the server's literals, which such a user is handed in the field
    assert _literals({IPV6}, (V4,)) == [V4]


def test_names_name_the_server_whatever_the_client() -> None:
    call = CallSpec(ice_urls="names")
    for client in ({IPV4}, {IPV6}, {IPV4, IPV6}):
        assert server_hosts(call, "turn", (V4, V6), frozenset(client)) == ["turn.simnet.test"]


def test_resolved_addresses_are_ordered_as_getaddrinfo_orders_them() -> None:
    found = [ip_address("192.0.2.10"), ip_address("2001:db8::a"), ip_address("2001:db8::b")]
    assert ordered(found, {IPV4, IPV6}) == found[1:] + found[:1]  # IPv6 first
    assert ordered(found, {IPV6}) == found[1:]  # AI_ADDRCONFIG: no IPv4 address, no A record
    assert ordered(found, {IPV4}) == found[:1]
    assert ordered(found, set()) == found[1:] + found[:1]


async def test_names_are_replaced_by_their_addresses_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from simnet.peer.aiortc import resolve

    async def lookup(name: str, namespace: str) -> list[object]:
        assert namespace == "ns-alice"
        return (
            [ip_address("192.0.2.10"), ip_address("2001:db8::a")]
            if name == "turn.simnet.test"
            else []
        )

    monkeypatch.setattr(resolve, "lookup", lookup)
    monkeypatch.setattr(resolve, "host_families", lambda: {IPV6})
    servers = [
        IceServer(urls=["stun:turn.simnet.test:3478"]),
        IceServer(
            urls=["turn:turn.simnet.test:3478?transport=udp", "turn:192.0.2.10:443?transport=tcp"],
            username="u",
            credential="p",
        ),
        IceServer(urls=["stun:nowhere.simnet.test:3478"]),
    ]
    out = await resolved_servers(servers, lambda: "ns-alice")
    assert [s.urls for s in out] == [
        ["stun:[2001:db8::a]:3478"],
        ["turn:[2001:db8::a]:3478?transport=udp", "turn:192.0.2.10:443?transport=tcp"],
    ]  # a name that does not resolve leaves its server out
    assert out[1].username == "u"
    literal_only = [IceServer(urls=["turn:[2001:db8::a]:3478"])]
    assert await resolved_servers(literal_only, lambda: pytest.fail("no name to resolve")) == (
        literal_only
    )


def _argv(**kwargs: object) -> list[str]:
    return turnserver_argv(TurnConfig(listening_ips=(V4, V6), **kwargs), FILES)  # type: ignore[arg-type]


def _values(argv: list[str], option: str) -> list[str]:
    return [b for a, b in itertools.pairwise(argv) if a == option]


def test_a_dual_stack_coturn_relays_both_families_and_admits_ipv6_peers() -> None:
    argv = _argv()
    assert _values(argv, "--relay-ip") == ["192.0.2.10", "2001:db8::a"]
    allowed = [a.split("=", 1)[1] for a in argv if a.startswith("--allowed-peer-ip=")]
    assert "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff" in allowed
    assert "192.0.2.0-192.0.2.255" in allowed


def test_relay_families_choose_the_relay_addresses_and_the_peer_ranges() -> None:
    v4_only = _argv(relay_families=(IPV4,))
    assert _values(v4_only, "--relay-ip") == ["192.0.2.10"]
    assert _values(v4_only, "--listening-ip") == ["192.0.2.10", "2001:db8::a"]  # still listens
    assert not any(a.startswith("--allowed-peer-ip=2001:") for a in v4_only)
    v6_only = _argv(relay_families=(IPV6,))
    assert _values(v6_only, "--relay-ip") == ["2001:db8::a"]
    ipv4_server = turnserver_argv(TurnConfig(listening_ips=(V4,)), FILES)
    assert not any("2001:" in a for a in ipv4_server)  # an IPv4 server's line is as it was


def test_relaying_a_family_the_server_has_no_address_of_is_refused() -> None:
    from simnet.errors import SimnetError

    with pytest.raises(SimnetError, match="relays no family"):
        turnserver_argv(TurnConfig(listening_ips=(V4,), relay_families=(IPV6,)), FILES)


def test_a_server_relaying_no_ipv4_allocates_ipv6_to_clients_that_ask_for_no_family() -> None:
    # aiortc and Chromium send no REQUESTED-ADDRESS-FAMILY; coturn's RFC default (IPv4) would
    # refuse them all with 440 on a server without an IPv4 relay address
    flag = "--allocation-default-address-family=ipv6"
    assert flag in _argv(relay_families=(IPV6,))
    assert flag in turnserver_argv(TurnConfig(listening_ips=(V6,)), FILES)
    assert flag not in _argv() and flag not in _argv(relay_families=(IPV4,))


def test_names_on_an_internet_without_dns_are_one_error_naming_the_field() -> None:
    from simnet.errors import ScenarioError
    from simnet.scenario.load import scenario_from_dict

    def scenario(ip: str) -> dict[str, object]:
        return {
            "nats": {"home": {"ip": ip}},
            "hosts": {"alice": {"behind": "home"}, "bob": {"behind": "internet"}},
            "servers": {"turn": {"kind": "turn"}, "sig": {"kind": "signaling"}},
            "call": {"offerer": "alice", "answerer": "bob", "ice_urls": "names"},
        }

    with pytest.raises(ScenarioError, match=r"call\.ice_urls: names need the emulated internet"):
        scenario_from_dict(scenario("v4"))
    assert scenario_from_dict(scenario("dual")).call.ice_urls == "names"  # type: ignore[union-attr]


def test_chromium_lets_the_emulated_zone_resolve() -> None:
    from simnet.peer.chromium.browser import EMULATED_ZONE, HOST_RESOLVER_RULES
    from simnet.services.dns import ZONE

    assert EMULATED_ZONE == ZONE
    assert f"EXCLUDE *.{ZONE}" in HOST_RESOLVER_RULES
    # the P2P resolver of UDP STUN/TURN URLs asks for the fully-qualified name, dot and all
    assert f"EXCLUDE *.{ZONE}." in HOST_RESOLVER_RULES.split(", ")
    assert HOST_RESOLVER_RULES.startswith("MAP * ~NOTFOUND")  # every other name goes nowhere

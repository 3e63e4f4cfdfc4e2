"""A row's address-family columns: the selected pair's family, whether each side's packets
crossed a NAT64, candidates per family; present only on a network that carries IPv6, so an
IPv4 network's rows keep exactly the columns they had."""

from __future__ import annotations

from ipaddress import IPv6Network

import pytest

from simnet.addresses import IPV4, IPV6
from simnet.call.row import SideNetwork, call_row, crossed_nat64, family_figures
from simnet.peer.browser.results import candidate_family, family_counts
from simnet.peer.iceurl import host_port, split_host_port
from simnet.peer.protocol import CallResult, CandidateInfo, RelayInfo, SelectedPair
from simnet.results.schema import FAMILY_COLUMNS

PREFIX = IPv6Network("2001:db8:64::/96")
DUAL = SideNetwork(frozenset({IPV4, IPV6}))
V4_HOME = SideNetwork(frozenset({IPV4}))
CARRIER = SideNetwork(frozenset({IPV6}), PREFIX)  # an IPv6-only network with a NAT64


def _pair(
    local: str, remote: str, local_type: str = "host", server: str | None = None
) -> SelectedPair:
    return SelectedPair(
        local=CandidateInfo(type=local_type, protocol="udp", address=local, port=5000),
        remote=CandidateInfo(type="host", protocol="udp", address=remote, port=6000),
        relay=None
        if server is None
        else RelayInfo(server_url=None, server=server, transport="udp"),
    )


def _result(
    role: str, pair: SelectedPair | None, local: dict[str, int], remote: dict[str, int]
) -> CallResult:
    return CallResult(
        role=role,  # type: ignore[arg-type]
        connected=pair is not None,
        selected_pair=pair,
        local_candidate_families=local,
        remote_candidate_families=remote,
    )


def test_a_direct_ipv6_call_between_dual_stack_homes() -> None:
    offer = _result(
        "offer",
        _pair("2001:db8:3::a", "2001:db8:3:1::a"),
        {"ipv4": 2, "ipv6": 1},
        {"ipv4": 2, "ipv6": 1},
    )
    answer = _result(
        "answer",
        _pair("2001:db8:3:1::a", "2001:db8:3::a"),
        {"ipv4": 2, "ipv6": 1},
        {"ipv4": 2, "ipv6": 1},
    )
    figures = family_figures(offer, answer, DUAL, DUAL)
    assert figures.ip_family == "ipv6"
    assert (figures.via_nat64, figures.offerer_via_nat64, figures.answerer_via_nat64) == (
        False,
        False,
        False,
    )
    assert (figures.local_candidates_ipv4, figures.local_candidates_ipv6) == (2, 1)
    assert (figures.remote_candidates_ipv4, figures.remote_candidates_ipv6) == (2, 1)


def test_a_relay_reached_through_the_nat64_marks_that_side_only() -> None:
    # the carrier's peer reaches an IPv4-only TURN server at its DNS64-synthesized address
    synthesized = "2001:db8:64::c000:20a"
    offer = _result(
        "offer",
        _pair("192.0.2.10", "198.51.100.10", "relay", host_port(synthesized, 3478)),
        {"ipv6": 1, "ipv4": 1},
        {"ipv4": 2},
    )
    answer = _result(
        "answer", _pair("198.51.100.10", "192.0.2.10"), {"ipv4": 2}, {"ipv4": 1, "ipv6": 1}
    )
    figures = family_figures(offer, answer, CARRIER, V4_HOME)
    assert figures.ip_family == "ipv4"  # the relayed address's family
    assert (figures.offerer_via_nat64, figures.answerer_via_nat64, figures.via_nat64) == (
        True,
        False,
        True,
    )


@pytest.mark.parametrize(
    ("pair", "side", "crossed"),
    [
        (_pair("2001:db8:2::a", "2001:db8:64::c633:640a"), CARRIER, True),  # a synthesized remote
        (_pair("2001:db8:2::a", "2001:db8:3::a"), CARRIER, False),  # native IPv6
        (_pair("192.0.0.2", "198.51.100.10"), CARRIER, True),  # IPv4 from a v6-only host: a CLAT
        (_pair("2001:db8:2::a", "2001:db8:3::a", "relay", "[2001:db8::a]:3478"), CARRIER, False),
        (_pair("198.51.100.7", "198.51.100.10"), DUAL, False),  # no NAT64 on its way
        (_pair("192.0.2.10", "198.51.100.10", "relay", "turn.simnet.test:3478"), CARRIER, True),
        (_pair("192.0.2.10", "198.51.100.10", "relay", "dual.simnet.test:3478"), CARRIER, False),
        (_pair("192.0.2.10", "198.51.100.10", "relay", "other.simnet.test:3478"), CARRIER, None),
        (
            _pair("192.0.2.10", "198.51.100.10", "relay"),
            CARRIER,
            None,
        ),  # the relay's server unknown
        (None, CARRIER, None),
    ],
)
def test_whether_a_sides_packets_crossed_its_nat64(
    pair: SelectedPair | None, side: SideNetwork, crossed: bool | None
) -> None:
    # a TURN server reached by name: crossed when it has no address of a family the host has
    servers = {"turn.simnet.test": frozenset({IPV4}), "dual.simnet.test": frozenset({IPV4, IPV6})}
    assert crossed_nat64(pair, side, servers) is crossed


def test_without_results_the_figures_are_unknown() -> None:
    figures = family_figures(None, None, CARRIER, DUAL)
    assert figures.ip_family is None and figures.via_nat64 is None
    assert figures.local_candidates_ipv6 == 0


def test_the_columns_are_stored_only_with_ipv6_in_the_network() -> None:
    offer = _result("offer", _pair("2001:db8:3::a", "2001:db8:3:1::a"), {"ipv6": 1}, {"ipv6": 1})
    answer = _result("answer", _pair("2001:db8:3:1::a", "2001:db8:3::a"), {"ipv6": 1}, {"ipv6": 1})
    ipv4_row = call_row(offer, answer)
    assert not set(FAMILY_COLUMNS) & set(ipv4_row.columns())  # as an IPv4 network's rows were
    row = ipv4_row.model_copy(update={"families": family_figures(offer, answer, DUAL, DUAL)})
    columns = row.columns()
    assert [c for c in columns if c in FAMILY_COLUMNS] == list(FAMILY_COLUMNS)
    assert columns["ip_family"] == "ipv6"


def test_chromium_candidates_are_counted_by_family() -> None:
    lines = [
        "candidate:1 1 udp 2122260223 192.0.2.10 5000 typ host generation 0",
        "candidate:2 1 udp 2122262783 2001:db8:3::a 5001 typ host generation 0",
        "candidate:3 1 udp 1686052607 198.51.100.7 5002 typ srflx raddr 192.0.2.10 rport 5000",
        "candidate:4 1 udp 2122260223 4c6b1bd1-e2f1.local 5003 typ host",  # an mDNS name
        "garbage",
    ]
    assert candidate_family(lines[1]) == "ipv6"
    assert family_counts(lines) == {"ipv4": 2, "ipv6": 1}


def test_endpoints_are_written_with_brackets_and_read_back() -> None:
    assert host_port("2001:db8::a", 3478) == "[2001:db8::a]:3478"
    assert host_port("192.0.2.10", 3478) == "192.0.2.10:3478"
    for endpoint in ("[2001:db8::a]:3478", "192.0.2.10:443", "turn.simnet.test:3478"):
        assert host_port(*split_host_port(endpoint)) == endpoint


def test_run_json_shows_the_family_keys_only_for_rows_that_have_them() -> None:
    import json

    from simnet.present.calls import json_line
    from simnet.results.schema import ResultRow

    offer = _result("offer", _pair("2001:db8:3::a", "2001:db8:3:1::a"), {"ipv6": 1}, {"ipv6": 1})
    answer = _result("answer", _pair("2001:db8:3:1::a", "2001:db8:3::a"), {"ipv6": 1}, {"ipv6": 1})
    outcome = call_row(offer, answer)
    identity = {
        "scenario": "s",
        "scenario_hash": "h",
        "seed": 0,
        "run": 0,
        "run_id": "r",
        "wall_ms": 1.0,
    }
    ipv4 = json.loads(json_line(ResultRow(call=outcome, **identity)))  # type: ignore[arg-type]
    assert "ip_family" not in ipv4
    figures = family_figures(offer, answer, DUAL, DUAL)
    ipv6 = json.loads(
        json_line(ResultRow(call=outcome.model_copy(update={"families": figures}), **identity))
    )  # type: ignore[arg-type]
    assert ipv6["ip_family"] == "ipv6" and ipv6["via_nat64"] is False
    assert list(ipv6)[: len(ipv4)] == list(ipv4)  # the usual keys first, in their order

"""`call.expect`: what a scenario may demand of its calls, and how a row is judged against it."""

from __future__ import annotations

from typing import Any

import pytest

from simnet.call.expect import unmet
from simnet.errors import ScenarioError
from simnet.results.schema import CallOutcome, ResultRow
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import Expectation

ROW: dict[str, Any] = {
    "connected": True,
    "error": None,
    "path": "relay",
    "relay_protocol": "tls",
    "rtt_ms": 101.5,
}


TIMELINE = ("recovered", "timeline_error")


def judge(expect: Expectation | None, columns: dict[str, Any], seed: int = 0) -> list[str]:
    """`unmet` of a row with these columns (the call's and the timeline's)."""
    call = CallOutcome(**{k: v for k, v in columns.items() if k not in TIMELINE})
    row = ResultRow(
        call=call, scenario="s", scenario_hash="", seed=seed, run=0, run_id="r", wall_ms=0.0,
        timeline={k: v for k, v in columns.items() if k in TIMELINE},
    )  # fmt: skip
    return unmet(expect, row)


def scenario_with(expect: dict[str, Any], **call: Any) -> Any:
    return scenario_from_dict(
        {
            "hosts": {"alice": {}, "bob": {}},
            "servers": {"signaling": {"kind": "signaling"}},
            "call": {"expect": expect, **call},
        }
    )


@pytest.mark.parametrize(
    ("expect", "misses"),
    [
        ({}, []),
        ({"path": "relay", "relay_protocol": "tls", "rtt_ms": (95, 140)}, []),
        ({"path": "direct"}, ["path 'relay', expected 'direct'"]),
        ({"relay_protocol": "udp"}, ["relay_protocol 'tls', expected 'udp'"]),
        ({"rtt_ms": (10, 100)}, ["rtt_ms 101.5, expected 10..100"]),
        ({"connected": False}, ["connected True, expected False"]),
    ],
)
def test_a_connected_row_is_judged_field_by_field(
    expect: dict[str, Any], misses: list[str]
) -> None:
    assert judge(Expectation(**expect), ROW) == misses


def test_an_expected_failure_passes_only_with_its_own_error() -> None:
    failed = {"connected": False, "error": "timeout:ice", "path": None, "rtt_ms": None}
    assert judge(Expectation(connected=False, error="timeout:ice"), failed) == []
    assert judge(Expectation(connected=False, error="turn-auth"), failed) == [
        "error 'timeout:ice', expected 'turn-auth'"
    ]
    # a failed call is not judged on the path it never had, only on having connected
    assert judge(Expectation(path="direct"), failed) == [
        "connected False, expected True (error 'timeout:ice')"
    ]


def test_recovery_is_judged_when_asked() -> None:
    expect = Expectation(recovered=True)
    assert judge(expect, {**ROW, "recovered": True}) == []
    assert judge(expect, {**ROW, "recovered": False}) == ["recovered False, expected True"]


@pytest.mark.parametrize(
    ("expect", "call", "message"),
    [
        ({"error": "timeout:ice"}, {}, "add connected: false"),
        ({"connected": False, "error": "timeout:everything"}, {}, "is not one of"),
        ({"connected": False, "path": "relay"}, {}, "describe a connected call"),
        ({"path": "direct", "relay_protocol": "udp"}, {}, "a direct path has no relay"),
        ({"rtt_ms": [50, 10]}, {}, "0 <= min <= max"),
        ({"recovered": True}, {}, "only a call with a timeline"),
        ({"path": "both"}, {}, "'direct' or 'relay'"),
        ({"pth": "direct"}, {}, "did you mean 'path'"),
    ],
)
def test_incoherent_expectations_are_rejected_with_a_reason(
    expect: dict[str, Any], call: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario_with(expect, **call)
    assert message in str(info.value)


def test_without_an_expectation_a_call_with_an_error_has_failed() -> None:
    """`queue_packets: 1` gave connected: true, error: timeout:datachannel, and exit 0."""
    assert judge(None, ROW) == []
    no_data = {**ROW, "error": "timeout:datachannel"}
    assert judge(None, no_data) == ["error 'timeout:datachannel', expected none"]
    assert judge(Expectation(path="relay"), no_data) == [
        "error 'timeout:datachannel', expected none"
    ]
    # the unexpected failure says how it failed (CI logs show nothing else of the row)
    failed = {**ROW, "connected": False, "error": "timeout:ice", "error_detail": "ice not done"}
    assert judge(None, failed) == [
        "connected False, expected True (error 'timeout:ice': ice not done)"
    ]


def test_an_expected_failure_without_a_named_error_accepts_any_error() -> None:
    failed = {"connected": False, "error": "timeout:dtls"}
    assert judge(Expectation(connected=False), failed) == []


def test_a_timeline_event_that_failed_fails_the_call_whatever_is_expected() -> None:
    broken = {**ROW, "timeline_error": "event 0 (link alice): nft: value out of range"}
    assert judge(None, broken) == ["timeline: event 0 (link alice): nft: value out of range"]
    assert judge(Expectation(connected=False), {**broken, "connected": False}) == [
        "timeline: event 0 (link alice): nft: value out of range"
    ]


def test_an_expectation_of_one_draw_holds_for_its_seed_only() -> None:
    """A lossy link's outcome is a draw: `seed` says which draw the expectation describes;
    a call of another seed is held to the rule for calls without an expectation."""
    one_draw = Expectation(path="direct", seed=0)
    assert judge(one_draw, ROW, seed=0) == ["path 'relay', expected 'direct'"]
    assert judge(one_draw, ROW, seed=7) == []
    failed = {**ROW, "connected": False, "path": None, "error": "timeout:gathering"}
    assert judge(one_draw, failed, seed=7) == [
        "connected False, expected True (error 'timeout:gathering')"
    ]
    assert judge(Expectation(path="direct"), ROW, seed=7) == ["path 'relay', expected 'direct'"]


V6_ROW: dict[str, Any] = {
    **ROW,
    "path": "direct",
    "relay_protocol": None,
    "families": {"ip_family": "ipv6", "via_nat64": False},
}


@pytest.mark.parametrize(
    ("expect", "columns", "misses"),
    [
        ({"ip_family": "ipv6"}, V6_ROW, []),
        ({"ip_family": "ipv4"}, V6_ROW, ["ip_family 'ipv6', expected 'ipv4'"]),
        ({"via_nat64": False}, V6_ROW, []),
        ({"via_nat64": True}, V6_ROW, ["via_nat64 False, expected True"]),
        # a row without family columns is a call on an IPv4-only network: IPv4, no NAT64
        ({"ip_family": "ipv4", "via_nat64": False}, ROW, []),
        ({"ip_family": "ipv6"}, ROW, ["ip_family 'ipv4', expected 'ipv6'"]),
        (
            {"ip_family": "ipv4", "via_nat64": True},
            {**ROW, "families": {"ip_family": "ipv4", "via_nat64": True}},
            [],
        ),
    ],
)
def test_the_family_and_nat64_crossing_are_judged(
    expect: dict[str, Any], columns: dict[str, Any], misses: list[str]
) -> None:
    assert judge(Expectation(**expect), columns) == misses


def test_a_failed_call_is_not_judged_on_its_family() -> None:
    failed = {"connected": False, "error": "timeout:ice", "families": {"ip_family": None}}
    assert judge(Expectation(ip_family="ipv6"), failed) == [
        "connected False, expected True (error 'timeout:ice')"
    ]


V6_NETWORK: dict[str, Any] = {
    "nats": {"home": {"ip": "dual"}},
    "hosts": {"alice": {"behind": "home"}, "bob": {}},
    "servers": {"signaling": {"kind": "signaling"}},
}


@pytest.mark.parametrize(
    ("expect", "nats", "message"),
    [
        ({"connected": False, "ip_family": "ipv6"}, {}, "describe a connected call"),
        ({"connected": False, "via_nat64": False}, {}, "crosses nothing"),
        ({"ip_family": "ipv6"}, {}, "ip_family: ipv6 needs a network with IPv6"),
        ({"via_nat64": True}, {"home": {"ip": "dual"}}, "via_nat64: true needs a NAT64"),
        ({"ip_family": "ipv5"}, {}, "'ipv4' or 'ipv6'"),
    ],
)
def test_family_expectations_the_network_cannot_give_are_rejected(
    expect: dict[str, Any], nats: dict[str, Any], message: str
) -> None:
    hosts = {"alice": {"behind": "home"} if nats else {}, "bob": {}}
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(
            {
                "nats": nats,
                "hosts": hosts,
                "servers": {"signaling": {"kind": "signaling"}},
                "call": {"expect": expect},
            }
        )
    assert message in str(info.value)


def test_family_expectations_the_network_can_give_are_accepted() -> None:
    v6 = scenario_from_dict({**V6_NETWORK, "call": {"expect": {"ip_family": "ipv6"}}})
    assert v6.call is not None and v6.call.expect is not None
    assert v6.call.expect.ip_family == "ipv6"
    nat64 = scenario_from_dict(
        {
            "nats": {"carrier": {"ip": "v6", "nat64": True}, "home": {}},
            "hosts": {"alice": {"behind": "carrier"}, "bob": {"behind": "home"}},
            "servers": {"signaling": {"kind": "signaling"}},
            "call": {"expect": {"via_nat64": True, "ip_family": "ipv4"}},
        }
    )
    assert nat64.call is not None and nat64.call.expect is not None
    assert nat64.call.expect.via_nat64 is True


def test_an_unexpected_failure_quotes_only_its_details_first_line() -> None:
    """An agent's detail may carry its log's last lines; the verdict is one line."""
    detail = "peer agent in sn-x exited (code 1)\n  the last lines of its log:\n    panic"
    failed = {**ROW, "connected": False, "error": "agent", "error_detail": detail}
    assert judge(None, failed) == [
        "connected False, expected True (error 'agent': peer agent in sn-x exited (code 1))"
    ]
    long = {**failed, "error_detail": "x" * 500}
    (verdict,) = judge(None, long)
    assert verdict.endswith("x…)") and len(verdict) < 220
    blank = {**failed, "error_detail": " \n "}  # nothing to quote: no dangling colon
    assert judge(None, blank) == ["connected False, expected True (error 'agent')"]

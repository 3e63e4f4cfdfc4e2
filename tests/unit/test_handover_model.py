"""Handover in a call's timeline, without a kernel: what `move` and `ice-restart` may say, the
address plan's interfaces for a moving host, and how the peers' reports become row columns."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface
from typing import Any

import pytest

from simnet.call.timeline import Note, StateChange, restart_columns, timeline_columns
from simnet.errors import ScenarioError
from simnet.net.plan import CORE, HOST_IF, plan_network
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import Scenario, TimelineEvent


def scenario(
    timeline: list[dict[str, Any]], duration_s: float = 10, **nats: dict[str, Any]
) -> Scenario:
    return scenario_from_dict(
        {
            "nats": nats or {"wifi": {}, "lte": {"preset": "cgnat"}, "office": {}},
            "hosts": {"alice": {"behind": "wifi"}, "bob": {"behind": "office"}},
            "servers": {"signaling": {"kind": "signaling"}},
            "call": {"duration_s": duration_s, "timeline": timeline},
        }
    )


def move(at_s: float, to: str, target: str = "alice") -> dict[str, Any]:
    return {"at_s": at_s, "action": "move", "target": target, "to": to}


def test_a_move_and_a_restart_are_kept_and_a_restart_is_the_offerers() -> None:
    s = scenario([move(3, "lte"), {"at_s": 4, "action": "ice-restart"}, move(6, "wifi")])
    assert s.call is not None
    first, restart, back = s.call.ordered_timeline
    assert (first.action, first.target, first.to) == ("move", "alice", "lte")
    assert restart.target is None  # the offerer's, filled in by the timeline
    assert (back.to, back.at_s) == ("wifi", 6)
    scenario([{"at_s": 4, "action": "ice-restart", "target": "alice"}])  # naming it is fine
    scenario([move(1, "internet")])  # a public address is a network too


@pytest.mark.parametrize(
    ("timeline", "message"),
    [
        ([{"at_s": 1, "action": "move", "target": "alice"}], "needs `to:`"),
        ([move(1, "wifi")], "call.timeline[0].to: 'alice' is already attached behind 'wifi'"),
        ([move(1, "lte"), move(2, "lte")], "call.timeline[1].to: 'alice' is already attached"),
        # in time order, whatever the file's order: the second move (at 1 s) comes first
        ([move(2, "lte"), move(1, "lte")], "call.timeline[0].to: 'alice' is already attached"),
        ([move(1, "mars")], "call.timeline[0].to: 'mars' is not a NAT of this scenario"),
        ([move(1, "lte-carrier")], "'lte-carrier' is not a NAT of this scenario"),
        ([move(1, "lte", target="wifi")], "only a host can move; 'wifi' is not one"),
        ([move(1, "lte", target="carol")], "'carol' is not a node"),
        ([{"at_s": 1, "action": "cut", "target": "alice", "to": "lte"}], "`to:` applies to"),
        ([{"at_s": 1, "action": "cut"}], "action 'cut' needs a `target:`"),
        (
            [{"at_s": 1, "action": "ice-restart", "target": "bob"}],
            "call.timeline[0].target: an ICE restart is made by the offerer ('alice')",
        ),
        (
            [move(1, "lte"), {"at_s": 2, "action": "link", "target": "alice", "link": {}}],
            "call.timeline[1].target: 'alice' has moved (call.timeline[0])",
        ),
    ],
)
def test_invalid_handovers_are_rejected_naming_the_field(
    timeline: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario(timeline)
    assert message in str(info.value)


def test_a_link_change_before_the_move_is_allowed() -> None:
    scenario([{"at_s": 1, "action": "link", "target": "alice", "link": {}}, move(2, "lte")])


def test_the_plan_gives_a_moving_host_a_standby_interface_per_network() -> None:
    plan = plan_network(scenario([move(1, "lte"), move(2, "internet"), move(3, "lte")]))
    alice = plan.nodes["alice"]
    assert list(alice.addresses) == [HOST_IF]  # only the first one is configured by the build
    places = plan.attachments["alice"]
    assert list(places) == ["wifi", "lte", CORE]  # moving back to lte reuses its interface
    home, lte, public = places["wifi"], places["lte"], places[CORE]
    assert home.veth.a_if == HOST_IF and not home.veth.standby
    assert home.address == alice.addresses[HOST_IF][0]
    assert (lte.veth.a_if, lte.veth.b, lte.veth.standby) == ("eth1", "lte", True)
    lan = plan.nodes["lte"].router
    assert lan is not None and lte.address.ip in lan.lan and lte.address.network == lan.lan
    assert lte.gateway == lan.lan.network_address + 1
    assert lte.address != home.address
    assert (public.veth.a_if, public.veth.b, public.address.network.prefixlen) == ("eth2", CORE, 32)
    assert public.gateway == IPv4Address("192.0.2.1")
    # the core routes the public address to its standby cable from the start
    core_routes = {(str(r.dst), r.dev) for r in plan.nodes[CORE].routes}
    assert (f"{public.address.ip}/32", public.veth.b_if) in core_routes
    assert "bob" not in plan.attachments  # only moving hosts get more than one


def test_an_exhausted_lan_is_an_error_before_anything_is_built() -> None:
    s = scenario(
        [move(1, "small")],
        wifi={},
        office={},
        small={"lan": "192.168.77.0/28", "preset": "full-cone"},
    )
    spec = s.model_dump()
    spec["hosts"].update({f"h{i}": {"behind": "small"} for i in range(5)})
    with pytest.raises(ScenarioError, match="too many hosts behind small"):
        plan_network(Scenario.model_validate(spec))
    spec["hosts"].pop("h4")
    plan = plan_network(Scenario.model_validate(spec))  # h0-h3 at .10-.13, alice's standby at .14
    assert plan.attachments["alice"]["small"].address == IPv4Interface("192.168.77.14/28")


PEERS = ("a", "b")
CONNECTED = [StateChange(100.0, p, k, s) for p in PEERS for k, s in
             (("ice", "connected"), ("connection", "connected"))]  # fmt: skip


def test_a_move_is_a_disruption_and_a_restart_does_not_end_its_window() -> None:
    events = [
        TimelineEvent(at_s=3, action="move", target="a", to="lte"),
        TimelineEvent(at_s=4, action="ice-restart", target="a"),
    ]
    changes = [
        *CONNECTED,
        StateChange(103.3, "a", "ice", "disconnected"),
        StateChange(104.2, "a", "ice", "checking"),
        StateChange(104.5, "a", "ice", "connected"),
    ]
    row = timeline_columns(
        events, [103.0, 104.0], [None, None], 100.0, changes, {"a": 112.0}, PEERS
    )
    assert row["event0_noticed_ms"] == pytest.approx(300)
    assert row["event0_noticed_state"] == "a:ice:disconnected"
    assert row["event0_recovered_ms"] == pytest.approx(1500)  # through the restart's window
    assert row["event1_noticed_ms"] is None and row["event1_failed_ms"] is None
    assert row["recovered"] is True


def test_restart_columns_time_the_restart_from_the_command() -> None:
    events = [
        TimelineEvent(at_s=3, action="move", target="a", to="lte"),
        TimelineEvent(at_s=4, action="ice-restart", target="a"),
    ]
    notes = [
        Note(104.01, "a", "ice_restart", supported=True),
        Note(104.02, "a", "ice_restart_started"),
        Note(104.05, "b", "media_resumed"),  # before the offerer's: the answerer's only
        Note(104.40, "a", "ice_restart_connected"),
        Note(104.60, "a", "media_resumed"),
        Note(104.70, "b", "media_resumed"),  # a later one of b's does not count
    ]
    row = restart_columns(events, [103.0, 104.0], notes, PEERS)
    assert "event0_restart_supported" not in row  # a move has no restart columns
    assert row["event1_restart_supported"] is True
    assert row["event1_restart_started_ms"] == pytest.approx(20)
    assert row["event1_restart_connected_ms"] == pytest.approx(400)
    assert row["event1_media_flowing_ms"] == pytest.approx(600)  # the later of the two
    assert row["event1_restart_failed"] is None and "event1_error" not in row


def test_an_unsupported_or_unanswered_restart_is_the_events_error() -> None:
    events = [TimelineEvent(at_s=4, action="ice-restart", target="a")]
    reason = "aiortc has no ICE restart (RTCPeerConnection.restartIce is not implemented)"
    row = restart_columns(
        events, [104.0], [Note(104.001, "a", "ice_restart", False, reason)], PEERS
    )
    assert row["event0_restart_supported"] is False
    assert row["event0_error"] == reason
    assert row["event0_restart_connected_ms"] is None and row["event0_media_flowing_ms"] is None
    # the answer of the answerer (which was not asked) is not the offerer's
    row = restart_columns(events, [104.0], [Note(104.1, "b", "ice_restart", True)], PEERS)
    assert row["event0_restart_supported"] is None
    assert row["event0_error"] == "the offerer did not answer the ice-restart command"
    failed = Note(110.0, "a", "ice_restart_failed", reason="no answer within 5 s")
    row = restart_columns(events, [104.0], [Note(104.0, "a", "ice_restart", True), failed], PEERS)
    assert row["event0_restart_failed"] == "no answer within 5 s" and "event0_error" not in row

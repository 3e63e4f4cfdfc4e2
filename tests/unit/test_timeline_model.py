"""A call's timeline: what a scenario may say, and how state changes become row columns."""

from __future__ import annotations

from typing import Any

import pytest

from simnet.call.timeline import Check, StateChange, path_columns, timeline_columns
from simnet.errors import ScenarioError
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import Scenario, TimelineEvent


def scenario(timeline: list[dict[str, Any]], duration_s: float = 10) -> Scenario:
    return scenario_from_dict(
        {
            "nats": {"home": {"preset": "full-cone"}, "open": {"preset": "open"}},
            "hosts": {"alice": {"behind": "home"}, "bob": {}},
            "servers": {"signaling": {"kind": "signaling"}},
            "call": {"duration_s": duration_s, "timeline": timeline},
        }
    )


def test_a_valid_timeline_is_kept_and_ordered_by_time() -> None:
    s = scenario(
        [
            {"at_s": 5, "action": "restore", "target": "alice"},
            {"at_s": 1, "action": "cut", "target": "alice"},
            {"at_s": 6, "action": "link", "target": "bob", "link": {"loss_pct": 5}},
            {"at_s": 7, "action": "nat-flush", "target": "home"},
        ]
    )
    assert s.call is not None
    assert [e.at_s for e in s.call.ordered_timeline] == [1, 5, 6, 7]


@pytest.mark.parametrize(
    ("event", "duration", "message"),
    [
        ({"at_s": 10, "action": "cut", "target": "alice"}, 10, "must last longer"),
        ({"at_s": 1, "action": "cut", "target": "carol"}, 10, "'carol' is not a node"),
        ({"at_s": 1, "action": "nat-flush", "target": "alice"}, 10, "not a translating NAT"),
        ({"at_s": 1, "action": "nat-flush", "target": "open"}, 10, "not a translating NAT"),
        ({"at_s": 1, "action": "link", "target": "alice"}, 10, "needs a `link:`"),
        (
            {"at_s": 1, "action": "cut", "target": "alice", "link": {"loss_pct": 1}},
            10,
            "applies to action 'link' only",
        ),
        (
            {"at_s": 1, "action": "link", "target": "alice", "link": {"mtu": 1200}},
            10,
            "mtu",
        ),
        ({"at_s": -1, "action": "cut", "target": "alice"}, 10, "greater than or equal"),
        ({"at_s": 1, "action": "reboot", "target": "alice"}, 10, "'link', 'cut'"),
        ({"at_s": 1, "action": "cut", "target": "alice", "when": 2}, 10, "unknown field"),
    ],
)
def test_invalid_timelines_are_rejected_with_a_reason(
    event: dict[str, Any], duration: float, message: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario([event], duration)
    assert message in str(info.value)


def states(*changes: tuple[float, str, str, str]) -> list[StateChange]:
    return [StateChange(*c) for c in changes]


CONNECTED = states(
    (100.0, "a", "ice", "completed"),
    (100.0, "a", "connection", "connected"),
    (100.0, "b", "ice", "completed"),
    (100.0, "b", "connection", "connected"),
)


def test_columns_attribute_a_failure_to_the_latest_disruption_and_report_no_recovery() -> None:
    events = [
        TimelineEvent(at_s=1, action="cut", target="a"),
        TimelineEvent(at_s=2, action="restore", target="a"),
        TimelineEvent(at_s=3, action="cut", target="a"),
        TimelineEvent(at_s=40, action="restore", target="a"),
    ]
    applied = [101.0, 102.0, 103.0, 140.0]
    changes = [*CONNECTED, *states((130.0, "b", "ice", "closed"), (135.0, "a", "ice", "closed"))]
    row = timeline_columns(
        events, applied, [None] * 4, 100.0, changes, {"a": 145.0, "b": 145.0}, ("a", "b")
    )
    assert row["event0_at_ms"] == pytest.approx(1000)
    assert row["event0_noticed_ms"] is None  # the short cut went unnoticed
    assert row["event2_noticed_ms"] == pytest.approx(27_000)
    assert row["event2_noticed_state"] == "b:ice:closed"
    assert row["event2_recovered_ms"] is None
    assert row["event3_noticed_ms"] is None  # a restore notices nothing itself
    assert row["event2_failed_ms"] == pytest.approx(27_000)
    assert row["event2_recovery_ms"] is None
    assert row["recovered"] is False


def test_columns_time_a_disconnection_and_the_recovery_after_its_restore() -> None:
    events = [
        TimelineEvent(at_s=1, action="cut", target="a"),
        TimelineEvent(at_s=5, action="restore", target="a"),
    ]
    changes = [
        *CONNECTED,
        *states(
            (103.5, "b", "ice", "disconnected"),
            (103.6, "a", "ice", "disconnected"),
            (105.3, "a", "ice", "connected"),
            (105.4, "b", "ice", "connected"),
        ),
    ]
    row = timeline_columns(
        events, [101.0, 105.0], [None] * 2, 100.0, changes, {"a": 110.0, "b": 110.0}, ("a", "b")
    )
    assert row["event0_noticed_ms"] == pytest.approx(2500)
    assert row["event0_noticed_state"] == "b:ice:disconnected"
    assert row["event0_recovered_ms"] == pytest.approx(4400)  # both peers connected again
    assert row["event0_recovery_ms"] == pytest.approx(400)  # after the restore
    assert row["event0_failed_ms"] is None
    assert "event1_recovery_ms" not in row  # a restore's recovery is its cut's
    assert row["recovered"] is True
    # a restore lets packets through from its first step: its recovery counts from there
    row = timeline_columns(
        events, [101.0, 105.5], [None] * 2, 100.0, changes, {"a": 110.0}, ("a", "b"),
        begun=[100.99, 105.0],
    )  # fmt: skip
    assert row["event0_recovery_ms"] == pytest.approx(400)
    assert row["event1_at_ms"] == pytest.approx(5500)


def test_columns_report_recovery_and_ignore_states_after_closing() -> None:
    events = [TimelineEvent(at_s=1, action="nat-flush", target="n")]
    changes = [
        *CONNECTED,
        *states(
            (102.0, "a", "connection", "connecting"),
            (102.5, "a", "connection", "connected"),
            (110.0, "b", "ice", "closed"),  # b's own teardown
        ),
    ]
    row = timeline_columns(events, [101.0], [None], 100.0, changes, {"b": 109.0}, ("a", "b"))
    assert row["event0_noticed_ms"] == pytest.approx(1000)
    assert row["event0_recovered_ms"] == pytest.approx(1500)
    assert row["recovered"] is True


def test_columns_when_the_data_channel_never_opened() -> None:
    events = [TimelineEvent(at_s=1, action="cut", target="a")]
    row = timeline_columns(events, [None], [None], None, [], {}, ("a", "b"))
    assert row["event0_at_ms"] is None and row["event0_noticed_ms"] is None
    assert row["recovered"] is False


def test_path_columns_pool_both_peers_checks_per_window() -> None:
    checks = [
        Check(100.5, "a", 20.0),
        Check(100.6, "b", 22.0),  # before the first event
        Check(101.5, "a", None),
        Check(101.6, "b", None),  # the cut
        Check(102.5, "a", 120.0),
        Check(102.6, "b", 124.0),
        Check(102.7, "a", None),  # after the restore, a delay and a lost check
        Check(109.5, "a", 1.0),  # after a's closing: not counted
    ]
    row = path_columns([101.0, 102.0], 100.0, checks, {"a": 109.0, "b": 109.2}, ("a", "b"))
    assert row["path_rtt_ms_before"] == pytest.approx(21.0)
    assert row["path_loss_pct_before"] == 0 and row["path_checks_before"] == 2
    assert row["event0_path_rtt_ms"] is None and row["event0_path_loss_pct"] == 100
    assert row["event1_path_rtt_ms"] == pytest.approx(122.0)
    assert row["event1_path_loss_pct"] == pytest.approx(100 / 3)
    assert row["event1_path_checks"] == 3
    assert row["event1_path_loss_pct_offerer"] == 50 and row["event1_path_loss_pct_answerer"] == 0


def test_a_check_sent_while_a_change_was_being_made_counts_on_neither_side() -> None:
    """Event 1 began at 102.0 and was complete at 102.3: the check sent at 102.1 (lost to the
    change) is neither event 0's (before it) nor event 1's (after it)."""
    checks = [Check(101.5, "a", 1.0), Check(102.1, "b", None), Check(102.5, "a", 1.0)]
    row = path_columns(
        [101.0, 102.3], 100.0, checks, {"a": 109.0}, ("a", "b"), begun=[100.9, 102.0]
    )
    assert row["event0_path_checks"] == 1 and row["event0_path_loss_pct"] == 0
    assert row["event1_path_checks"] == 1 and row["event1_path_loss_pct"] == 0


def test_path_columns_of_an_event_never_applied_are_empty() -> None:
    row = path_columns([None], 100.0, [Check(100.5, "a", 5.0)], {"a": 101.0}, ("a", "b"))
    assert row["path_checks_before"] == 1
    assert row["event0_path_checks"] == 0 and row["event0_path_rtt_ms"] is None
    assert row["path_loss_pct_answerer_before"] is None  # b made no check
    assert path_columns([None], None, [], {}, ("a", "b")) == {}


def test_an_event_that_could_not_be_applied_is_a_row_level_error() -> None:
    """It showed only in its `eventN_error` cell, while `--json` and the exit code said nothing."""
    events = [
        TimelineEvent(at_s=1, action="cut", target="a"),
        TimelineEvent(at_s=2, action="link", target="a", link={"loss_pct": 5}),
    ]
    row = timeline_columns(
        events, [101.0, None], [None, "nft: exploded"], 100.0, [], {}, ("a", "b")
    )
    assert row["event1_error"] == "nft: exploded"
    assert row["timeline_error"] == "event 1 (link a): nft: exploded"
    fine = timeline_columns(events[:1], [101.0], [None], 100.0, [], {}, ("a", "b"))
    assert "timeline_error" not in fine

"""A call's timeline against a real call: link cuts during the call, as the peers experience them.

Each peer's agent reports ICE "disconnected" after 2.5 s without hearing its peer and
"connected" as soon as packets flow again, as a browser does (`simnet.peer.aiortc.liveness`);
aioice's own consent freshness (a check every 5 s x0.8-1.2, 6 failures in a row) still closes the
ICE connection after ~30 s, and aiortc has no ICE restart. So a short cut is noticed and recovered
from, while a long one fails the call for good, even once the link is back. One call shows
both: a 4 s cut, then a cut that lasts until 42 s.
"""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import pytest

from simnet.run.calls import run_scenario
from simnet.scenario.load import scenario_from_dict

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(110),
]

SCENARIO: dict[str, Any] = {
    "name": "timeline-cut",
    "nats": {"home": {"preset": "full-cone"}},
    "hosts": {"alice": {"behind": "home"}, "bob": {"behind": "internet"}},
    "servers": {"turn": {"kind": "turn"}, "signaling": {"kind": "signaling"}},
    "call": {
        "data_bytes": 0,  # the data channel phase ends before the first event
        "duration_s": 44,
        "timeline": [
            {"at_s": 1, "action": "cut", "target": "alice"},
            {"at_s": 5, "action": "restore", "target": "alice"},
            {"at_s": 7, "action": "cut", "target": "alice"},
            {"at_s": 42, "action": "restore", "target": "alice"},
        ],
    },
}


def assert_torn_down(row: dict[str, Any]) -> None:
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert str(row["run_id"]) not in left


def test_a_short_cut_is_noticed_and_recovered_a_long_one_fails_the_call_for_good() -> None:
    [row] = run_scenario(scenario_from_dict(SCENARIO))
    states = row["timeline_states"]
    assert row["connected"] and row["error"] is None, row
    assert row["path"] == "direct", row  # the pair as set up, though ICE closed later
    for i, at in enumerate((1000, 5000, 7000, 42000)):
        assert row[f"event{i}_at_ms"] == pytest.approx(at, abs=500), row
    # the short cut: 2.5 s of silence after the last packet heard (at most one 0.6 s check
    # interval before the cut), and back once the next check crosses the restored link
    noticed = row["event0_noticed_ms"]
    assert noticed is not None and 1_800 <= noticed <= 2_700, states
    assert row["event0_noticed_state"].endswith(":ice:disconnected"), states
    assert row["event0_failed_ms"] is None, states
    recovery = row["event0_recovery_ms"]
    assert recovery is not None and 0 <= recovery < 1_500, states
    # the long cut: disconnected as fast, then consent expires, ICE closes; nothing brings it
    # back after the restore at 42 s
    noticed = row["event2_noticed_ms"]
    assert noticed is not None and 1_800 <= noticed <= 2_700, states
    failed = row["event2_failed_ms"]
    assert failed is not None and 15_000 < failed < 38_000, states
    assert row["event2_recovered_ms"] is None and row["event2_recovery_ms"] is None, states
    assert row["recovered"] is False, states
    assert row["ice_disconnects"] >= 3, row  # both peers for the long cut, one+ for the short
    assert_torn_down(row)


def test_without_liveness_only_aiortc_states_show_and_a_short_cut_goes_unnoticed() -> None:
    spec = copy.deepcopy(SCENARIO)
    spec["call"].update(liveness=None, duration_s=8, timeline=SCENARIO["call"]["timeline"][:2])
    [row] = run_scenario(scenario_from_dict(spec))
    assert row["connected"] and row["error"] is None, row
    assert row["event0_noticed_ms"] is None, row["timeline_states"]
    assert "disconnected" not in row["timeline_states"]
    assert row["recovered"] is True and row["ice_disconnects"] == 0
    assert_torn_down(row)


def flush_call(preset: str, timeline: list[dict[str, Any]], duration_s: float) -> dict[str, Any]:
    spec = copy.deepcopy(SCENARIO)
    spec["nats"]["home"]["preset"] = preset
    spec["call"].update(duration_s=duration_s, timeline=timeline)
    [row] = run_scenario(scenario_from_dict(spec))
    assert row["connected"] and row["error"] is None, row
    assert_torn_down(row)
    return row


def test_a_link_change_shows_in_the_calls_own_checks_and_a_nat_reboot_is_survived() -> None:
    """30% loss each way for 4 s (a check's round trip survives 0.7 x 0.7 = 49% of the time),
    then the scenario's clean link, then a reboot of a port-preserving NAT: the peer's next
    packets recreate the same mapping, so the call does not even notice (at most a check or
    two of the answerer's, sent before that, are lost)."""
    row = flush_call(
        "full-cone",
        [
            {"at_s": 1, "action": "link", "target": "alice", "link": {"loss_pct": 30}},
            {"at_s": 5, "action": "restore", "target": "alice"},
            {"at_s": 6, "action": "nat-flush", "target": "home"},
        ],
        duration_s=9,
    )
    states = row["timeline_states"]
    assert row["path_loss_pct_before"] == 0 and row["path_checks_before"] >= 1, row
    assert row["event0_path_checks"] >= 12, row
    assert 15 <= row["event0_path_loss_pct"] <= 85, row  # 51% expected; binomial over >= 12
    assert row["event1_path_loss_pct"] == 0, row
    # the offerer's next check recreates the mapping and is answered through it; a check of the
    # answerer's that reaches the NAT before that finds no mapping and is lost (one, at most two)
    assert row["event2_path_loss_pct_offerer"] == 0, row
    assert row["event2_path_loss_pct_answerer"] < 50, row
    assert row["event2_noticed_ms"] is None, states
    assert row["recovered"] is True and row["ice_disconnects"] == 0, states


def test_rebooting_a_symmetric_nat_breaks_the_path_back_for_good() -> None:
    """After the reboot the offerer's packets leave from a new random port: they still reach
    the answerer and its answers go back to where they came from, but the answerer keeps
    sending to the old mapping, which is gone (aioice does not follow a NAT rebinding)."""
    row = flush_call("symmetric", [{"at_s": 1, "action": "nat-flush", "target": "home"}], 6)
    states = row["timeline_states"]
    assert row["event0_noticed_state"] == "bob:ice:disconnected", states
    assert 1_800 <= row["event0_noticed_ms"] <= 3_500, states
    assert row["event0_recovered_ms"] is None and row["recovered"] is False, states
    assert row["event0_path_loss_pct_answerer"] == 100, row
    assert row["event0_path_loss_pct_offerer"] == 0, row

"""A call's timeline against a real call: a link cut during the call, as aiortc experiences it.

aioice checks consent every 5 s (x0.8-1.2) without retransmission and closes the ICE connection
after 6 failures in a row; aiortc has no ICE restart. So a short cut goes unnoticed and the call
survives, while a long one is noticed after ~20-37 s and the call never recovers, even once the
link is back. One call shows both: a 2 s cut, then a cut that lasts until 42 s.
"""

from __future__ import annotations

import subprocess

import pytest

from simnet.call.session import run_scenario
from simnet.scenario.load import scenario_from_dict

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(110),
]

SCENARIO = {
    "name": "timeline-cut",
    "nats": {"home": {"preset": "full-cone"}},
    "hosts": {"alice": {"behind": "home"}, "bob": {"behind": "internet"}},
    "servers": {"turn": {"kind": "turn"}, "signaling": {"kind": "signaling"}},
    "call": {
        "data_bytes": 0,  # the data channel phase ends before the first event
        "duration_s": 44,
        "timeline": [
            {"at_s": 1, "action": "cut", "target": "alice"},
            {"at_s": 3, "action": "restore", "target": "alice"},
            {"at_s": 4, "action": "cut", "target": "alice"},
            {"at_s": 42, "action": "restore", "target": "alice"},
        ],
    },
}


def test_a_short_cut_goes_unnoticed_and_a_long_one_fails_the_call_for_good() -> None:
    [row] = run_scenario(scenario_from_dict(SCENARIO))
    states = row["timeline_states"]
    assert row["connected"] and row["error"] is None, row
    assert row["path"] == "direct", row  # the pair as set up, though ICE closed later
    for i, at in enumerate((1000, 3000, 4000, 42000)):
        assert row[f"event{i}_at_ms"] == pytest.approx(at, abs=500), row
    # 2 s without a packet: no consent check failed 6 times, ICE never left "completed"
    assert row["event0_noticed_ms"] is None, states
    # the long cut: consent expires on one side, ICE closes; nothing brings it back
    noticed = row["event2_noticed_ms"]
    assert noticed is not None and 15_000 < noticed < 38_000, states
    assert row["event2_noticed_state"].split(":")[-1] in ("closed", "failed"), states
    assert row["event2_recovered_ms"] is None, states
    assert row["recovered"] is False, states
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert str(row["run_id"]) not in left  # the run tore everything down

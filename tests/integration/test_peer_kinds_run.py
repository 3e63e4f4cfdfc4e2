"""`simnet run` with Chromium peers, mixed with aiortc ones, through the whole job layer.

Why: a Chromium peer is only useful if a scenario can ask for it (`hosts.X.peer`) and the call
is made, measured and stored like any other: the same row, saying which stack each side was.
Mixed calls are the interoperability claim: the Chromium page and the aiortc agent speak one
signaling and data-channel protocol, with trickled candidates on one side and complete SDPs on
the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simnet.run.calls import run_scenario
from simnet.scenario import load_scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _peers(offerer: str, answerer: str) -> list[str]:
    return [f"hosts.alice.peer={offerer}", f"hosts.bob.peer={answerer}"]


def _check_stacks(row: Any, offerer: str, answerer: str) -> None:
    assert (row["offerer_peer"], row["answerer_peer"]) == (offerer, answerer)
    prefix = {"aiortc": "aiortc ", "chromium": "Chromium "}
    assert str(row["offerer_peer_version"]).startswith(prefix[offerer])
    assert str(row["answerer_peer_version"]).startswith(prefix[answerer])


@pytest.mark.parametrize(
    ("offerer", "answerer"),
    [("chromium", "chromium"), ("chromium", "aiortc"), ("aiortc", "chromium")],
)
def test_chromium_and_mixed_calls_connect_directly_on_a_lan(offerer: str, answerer: str) -> None:
    scenario = load_scenario(
        SCENARIOS / "direct-lan.yaml", [*_peers(offerer, answerer), "call.data_bytes=200000"]
    )
    (row,) = run_scenario(scenario)
    assert row["connected"] and row["error"] is None, (row["error"], row["error_detail"])
    assert row["path"] == "direct" and row["local_candidate"] == "host"
    assert row["dc_bytes"] == 200_000 and row["dc_goodput_mbps"] > 0
    assert row["rtt_ms"] > 0 and row["setup_ms"] > 0
    _check_stacks(row, offerer, answerer)


@pytest.mark.parametrize(("offerer", "answerer"), [("chromium", "aiortc"), ("aiortc", "chromium")])
def test_mixed_relay_only_calls_go_through_turn(offerer: str, answerer: str) -> None:
    scenario = load_scenario(
        SCENARIOS / "relay-only.yaml", [*_peers(offerer, answerer), "call.data_bytes=200000"]
    )
    (row,) = run_scenario(scenario)
    assert row["connected"] and row["error"] is None, (row["error"], row["error_detail"])
    assert row["path"] == "relay" and row["relay_protocol"] == "udp"
    _check_stacks(row, offerer, answerer)


def test_a_browser_picks_one_of_two_turn_regions_and_the_row_says_which() -> None:
    """Both sides behind symmetric NATs: every call is relayed. A browser gets both regions'
    TURN servers (all transports); the row's relay_region names the one its pair used."""
    scenario = load_scenario(
        SCENARIOS / "two-turn-regions.yaml",
        [*_peers("chromium", "chromium"), "call.data_bytes=100000"],
    )
    rows = run_scenario(scenario, repeat=2)
    for row in rows:
        assert row["connected"], (row["error"], row["error_detail"])
        pair = {k: row[k] for k in ("local_candidate", "remote_candidate", "relay_server",
                                    "relay_protocol", "relay_region")}  # fmt: skip
        assert row["path"] == "relay" and row["relay_region"] in ("eu", "us"), pair
    print("\nChromium relay regions:", [(r["relay_region"], r["relay_protocol"]) for r in rows])

"""`simnet run` with Chromium peers, mixed with aiortc ones, through the whole job layer.

Why: a Chromium peer is only useful if a scenario can ask for it (`hosts.X.peer`) and the call
is made, measured and stored like any other: the same row, saying which stack each side was.
Mixed calls are the interoperability claim: the Chromium page and the aiortc agent speak one
signaling and data-channel protocol, with trickled candidates on one side and complete SDPs on
the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simnet.results.store import load
from simnet.run.calls import run_scenario
from simnet.scenario import load_scenario
from tests.integration.conftest import run_cli
from tests.integration.pcapfile import is_stun, packets, udp_ends

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
    """Relayed both ways over TURN/UDP, the one transport offered: with several, a browser
    relays over whichever of its relays' pairs is writable first (TCP's on a loaded machine)."""
    overrides = [*_peers(offerer, answerer), "call.data_bytes=200000", "call.turn_transports=[udp]"]
    scenario = load_scenario(SCENARIOS / "relay-only.yaml", overrides)
    (row,) = run_scenario(scenario)
    assert row["connected"] and row["error"] is None, (row["error"], row["error_detail"])
    assert row["path"] == "relay" and row["relay_protocol"] == "udp"
    _check_stacks(row, offerer, answerer)


def _last_sent_to(pcap: Path, servers: set[str]) -> str | None:
    """The server the last packet of the call's own traffic (not STUN: no check, no TURN
    allocation or its release at the end) a host sent to one of `servers` went to, from its
    capture: the kernel's record, not the browser's."""
    last = None
    for packet in packets(pcap):
        ends = udp_ends(packet)
        if ends is not None and ends[1] in servers and not is_stun(ends[2]):
            last = ends[1]
    return last


def test_a_browser_picks_one_of_two_turn_regions_and_the_row_says_which(tmp_path: Path) -> None:
    """Both sides behind symmetric NATs: every call is relayed. A browser gets both regions'
    TURN servers (all transports); the row's relay_region names the server the offerer's
    packets went through at the end of the call. eu, the first server listed, is 40 ms farther
    away: the near relay (us) answers its checks first, and libwebrtc may move the call to eu
    once eu's checks succeed (a higher-priority pair), so the pair at the end is not the first
    pair. Each side sends on its own selected pair, and for a moment after a move the two differ
    (alice sending to bob's eu relay while bob still sends through us),
    so the row, which is the offerer's view, is held to what the offerer sent; a relay server it
    names is the region's."""
    sets = [*_peers("chromium", "chromium"), "call.data_bytes=100000"]
    sets.append("servers.turn-eu.link.delay_ms=40")
    # a call that moved regions can end with the offerer on prflx/relay while the answerer's
    # pair differs, so its row names no relay transport (None: unknown, CI33), which the file's
    # `relay_protocol: udp` would count as unmet; this test is about the region
    sets.append("call.expect.relay_protocol=null")
    out = tmp_path / "results"
    done = run_cli(
        "run", str(SCENARIOS / "two-turn-regions.yaml"), *(f"--set={s}" for s in sets),
        "--repeat", "2", "--pcap", "--out", str(out), timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.output
    rows = load(out).to_dict("records")
    servers = {"192.0.2.10": "eu", "192.0.2.11": "us"}  # turn-eu, turn-us: the plan's order
    for row in rows:
        assert row["connected"], (row["error"], row["error_detail"])
        pair = {k: row[k] for k in ("local_candidate", "remote_candidate", "relay_server",
                                    "relay_protocol", "relay_region")}  # fmt: skip
        assert row["path"] == "relay" and row["relay_region"] in ("eu", "us"), pair
        if row["relay_server"] is not None:
            server = str(row["relay_server"]).split(":")[0]
            assert servers.get(server) == row["relay_region"], pair
        pcap = out / json.loads(row["pcap_files"])["alice"]  # the scenario's offerer
        # the last of the call's packets the offerer sent went out on its final pair (a move
        # can come a few packets before the end: in that run, the last 4 of 10 went to eu)
        last = _last_sent_to(pcap, set(servers))
        assert last is not None and servers[last] == row["relay_region"], pair
    print("\nChromium relay regions:", [(r["relay_region"], r["relay_protocol"]) for r in rows])

"""`simnet run` with pion peers (pion/webrtc from Debian's Go packages), with each other and
with aiortc, through the whole job layer.

Why: a third ICE stack is only useful if a scenario can ask for it (`hosts.X.peer: pion`) and
its calls are made, measured and stored like any other: hole punching between two homes, a
relay through coturn over UDP and over TLS (trusting coturn's certificate), an ICE restart
after a handover, audio both ways, and no agent left running after the run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil
import pytest

from simnet.peer.pion import ensure_built
from simnet.peer.pion.stamp import BINARY
from simnet.run.calls import run_scenario
from simnet.scenario import load_scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _peers(offerer: str, answerer: str) -> list[str]:
    return [f"hosts.alice.peer={offerer}", f"hosts.bob.peer={answerer}"]


def _agents() -> set[int]:
    """Live pion agents on this machine (their executable is the built agent)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(proc / "exe").resolve() == BINARY.resolve():
                    stat = (proc / "stat").read_text()
                    if stat.rsplit(")", 1)[1].split()[0] != "Z":
                        found.add(int(proc.name))
            except OSError:
                continue
    return found


def _ours_or_orphaned(pid: int) -> bool:
    """Started under this test process (its descendant), or left to init: the agents of runs
    that other pytest workers are making at the same time are neither."""
    try:
        parents = psutil.Process(pid).parents()
    except psutil.NoSuchProcess:
        return False
    return not parents or parents[0].pid == 1 or any(p.pid == os.getpid() for p in parents)


@pytest.fixture(autouse=True)
def no_agent_left() -> Any:
    ensure_built()
    before = _agents()
    yield
    left = {pid for pid in _agents() - before if _ours_or_orphaned(pid)}
    assert left == set(), "a pion agent outlived its run"


def _check(row: Any, offerer: str, answerer: str) -> None:
    assert row["connected"] and row["error"] is None, (row["error"], row["error_detail"])
    assert (row["offerer_peer"], row["answerer_peer"]) == (offerer, answerer)
    for side, kind in (("offerer", offerer), ("answerer", answerer)):
        if kind == "pion":
            assert str(row[f"{side}_peer_version"]).startswith("pion/webrtc 3.")


@pytest.mark.parametrize(
    ("offerer", "answerer"), [("pion", "pion"), ("pion", "aiortc"), ("aiortc", "pion")]
)
def test_pion_calls_punch_through_two_home_routers_with_audio(offerer: str, answerer: str) -> None:
    """Port-restricted home to full-cone home: hole punching works, no relay needed."""
    sets = [*_peers(offerer, answerer), "call.ice_policy=all", "call.data_bytes=200000"]
    sets += ["call.media.audio=true", "call.media.coding=replay", "call.duration_s=2"]
    (row,) = run_scenario(load_scenario(SCENARIOS / "relay-only.yaml", sets))
    _check(row, offerer, answerer)
    assert row["path"] == "direct", (row["local_candidate"], row["remote_candidate"])
    assert row["dc_bytes"] == 200_000 and row["dc_goodput_mbps"] > 0
    assert row["rtt_ms"] > 0 and row["setup_ms"] > 0
    for side in ("offerer", "answerer"):
        # 2 s of 20 ms packets each way, counted in the window (a few may straddle its ends)
        assert 80 <= row[f"{side}_audio_recv_frames"] <= 120, row[f"{side}_audio_recv_frames"]
        assert row[f"{side}_audio_sent_kbps"] > 0


@pytest.mark.parametrize("transport", ["udp", "tls"])
def test_relay_only_pion_calls_go_through_coturn(transport: str) -> None:
    """Relay only, one TURN transport offered: UDP, or TLS trusting coturn's self-signed
    certificate (the call's ca_file); the row names the transport and the server."""
    sets = [*_peers("pion", "pion"), f"call.turn_transports=[{transport}]", "call.data_bytes=0"]
    (row,) = run_scenario(load_scenario(SCENARIOS / "relay-only.yaml", sets))
    _check(row, "pion", "pion")
    assert row["path"] == "relay" and row["relay_protocol"] == transport
    assert row["relay_server"] is not None
    attempts = [a for a in row["turn_attempts"] if a["side"] == "offer"]
    assert attempts and all(a["ok"] and a["transport"] == transport for a in attempts), attempts


def test_a_relay_only_call_between_pion_and_aiortc() -> None:
    (row,) = run_scenario(load_scenario(SCENARIOS / "relay-only.yaml", _peers("pion", "aiortc")))
    _check(row, "pion", "aiortc")
    assert row["path"] == "relay"


def test_pion_restarts_ice_after_a_handover_and_the_call_recovers() -> None:
    """The handover scenario with pion on both sides (audio only: pion has no video encoder):
    alice moves to LTE, the timeline asks the offerer to restart ICE, and it does."""
    sets = [*_peers("pion", "pion"), "call.media.video=null"]
    (row,) = run_scenario(load_scenario(SCENARIOS / "handover-wifi-to-lte.yaml", sets))
    _check(row, "pion", "pion")
    assert row["event1_restart_supported"] is True
    assert row["event1_restart_failed"] is None
    assert row["event1_restart_connected_ms"] is not None
    assert row["recovered"] is True


def test_a_wrong_turn_password_is_turn_auth_with_each_urls_401() -> None:
    """Relay only with wrong credentials: no candidate at all, so the call fails at once as
    turn-auth, and each TURN URL's attempt carries coturn's 401 (from pion's TURN client)."""
    sets = [*_peers("pion", "pion"), "call.wrong_credentials=true", "call.expect=null"]
    (row,) = run_scenario(load_scenario(SCENARIOS / "relay-only.yaml", sets))
    assert not row["connected"] and row["error"] == "turn-auth", row["error_detail"]
    attempts = row["turn_attempts"]
    assert {a["transport"] for a in attempts} == {"udp", "tcp", "tls"}
    assert all(not a["ok"] and a["error_code"] == 401 for a in attempts), attempts

"""The Chromium peer's pure logic, without a browser: the page-clock mapping and its error bound,
and the `CallResult` built from what the page reports (getStats() snapshots shaped as Chromium
156 gives them, candidate lines, icecandidateerror events).

Why: these are the figures a Chromium row shows next to an aiortc row, so they must follow the
same definitions (a relay's server and transport, candidate counts, audio frames in 20 ms units,
jitter in ms), and a wrong mapping would shift every phase of the call on the shared clock.
"""

from __future__ import annotations

from typing import Any

import pytest

from simnet.errors import EnvironmentProblem
from simnet.peer.browser.clock import ClockMapping, Sample, mapping_from
from simnet.peer.browser.results import (
    build_result,
    candidate_counts,
    kind_stats,
    selected_pair,
    turn_attempts,
    turn_endpoint,
)
from simnet.peer.chromium import agent_argv, require_chromium
from simnet.peer.protocol import CallCommand, IceServer

# --- clock ---------------------------------------------------------------------------------


def test_the_tightest_round_trip_sets_the_mapping_and_its_error() -> None:
    # The page's clock runs 1000 s behind the shared one. Each sample read it somewhere inside
    # its round trip; the shortest round trip bounds the error by half its length.
    samples = [
        Sample(sent=10.000, received=10.010, page_ms=(10.009 - 1000) * 1000),  # read late
        Sample(sent=10.020, received=10.0202, page_ms=(10.0201 - 1000) * 1000),  # tightest
        Sample(sent=10.030, received=10.034, page_ms=(10.030 - 1000) * 1000),  # read early
    ]
    mapping = mapping_from(samples)
    assert mapping.error_s == pytest.approx(0.0001)
    assert mapping.offset_s == pytest.approx(1000.0, abs=1e-9)
    # a page time maps back to the shared instant it was read at, within the bound
    assert mapping.to_shared((10.5 - 1000) * 1000) == pytest.approx(10.5, abs=mapping.error_s)
    assert mapping.offset_ms == pytest.approx(mapping.offset_s * 1000)


def test_the_true_instant_is_always_inside_the_bound() -> None:
    # whatever instant inside its round trip the page read its clock, the mapped time of any
    # later page reading is off by at most half that round trip
    for fraction in (0.0, 0.25, 0.5, 0.9, 1.0):
        sent, received = 5.0, 5.004
        read_at = sent + fraction * (received - sent)
        mapping = mapping_from([Sample(sent, received, (read_at - 42.0) * 1000)])
        error = abs(mapping.to_shared((7.0 - 42.0) * 1000) - 7.0)
        assert error <= mapping.error_s + 1e-12


def test_no_samples_or_a_backwards_round_trip_is_refused() -> None:
    with pytest.raises(ValueError):
        mapping_from([])
    with pytest.raises(ValueError):
        mapping_from([Sample(sent=2.0, received=1.0, page_ms=0.0)])


# --- candidates and TURN ---------------------------------------------------------------------

HOST = "candidate:1 1 udp 2122260223 10.0.1.2 50000 typ host generation 0 ufrag a network-id 1"
SRFLX = "candidate:2 1 udp 1686052607 203.0.113.5 40000 typ srflx raddr 10.0.1.2 rport 50000"
RELAY = "candidate:3 1 udp 41885439 192.0.2.10 49152 typ relay raddr 203.0.113.5 rport 40000"


def test_candidates_are_counted_by_type() -> None:
    assert candidate_counts([HOST, SRFLX, RELAY, RELAY, "garbage"]) == {
        "host": 1,
        "srflx": 1,
        "relay": 2,
    }


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("turn:192.0.2.10:3478?transport=udp", ("192.0.2.10", 3478, "udp")),
        ("turn:192.0.2.10:3478?transport=tcp", ("192.0.2.10", 3478, "tcp")),
        ("turn:192.0.2.10", ("192.0.2.10", 3478, "udp")),
        ("turns:192.0.2.10:5349?transport=tcp", ("192.0.2.10", 5349, "tls")),
        ("turns:192.0.2.10", ("192.0.2.10", 5349, "tls")),
        ("stun:192.0.2.10:3478", None),
    ],
)
def test_turn_urls_name_their_server_and_transport(url: str, endpoint: object) -> None:
    assert turn_endpoint(url) == endpoint


def test_turn_attempts_say_which_server_gave_a_relay_and_which_refused() -> None:
    urls = [
        "stun:192.0.2.10:3478",
        "turn:192.0.2.10:3478?transport=udp",
        "turn:198.51.100.7:3478?transport=udp",
        "turns:192.0.2.10:5349?transport=tcp",  # neither a candidate nor an error: not listed
    ]
    local = [
        {"candidate": HOST, "url": None, "pt": 1000.0},
        {"candidate": RELAY, "url": "turn:192.0.2.10:3478?transport=udp", "pt": 1040.0},
    ]
    errors = [
        {"url": "stun:192.0.2.10:3478", "error_code": 701, "error_text": "timeout", "pt": 1500.0},
        {
            "url": "turn:198.51.100.7:3478?transport=udp",
            "error_code": 401,
            "error_text": "Unauthorized",
            "pt": 1020.0,
        },
    ]
    attempts = turn_attempts(urls, local, errors, gather_started_pt=1000.0)
    assert [(a.server, a.transport, a.ok, a.error_code) for a in attempts] == [
        ("192.0.2.10:3478", "udp", True, None),
        ("198.51.100.7:3478", "udp", False, 401),
    ]
    assert attempts[0].elapsed_ms == pytest.approx(40.0)
    assert attempts[1].error == "401 Unauthorized"


# --- getStats ----------------------------------------------------------------------------------


def _pair_stats(local_type: str = "relay") -> list[dict[str, Any]]:
    local: dict[str, Any] = {
        "id": "ILx",
        "type": "local-candidate",
        "candidateType": local_type,
        "protocol": "udp",
        "address": "192.0.2.10",
        "port": 49152,
    }
    if local_type == "relay":
        local |= {"url": "turns:192.0.2.10:5349?transport=tcp", "relayProtocol": "tls"}
    return [
        {"id": "T01", "type": "transport", "selectedCandidatePairId": "CPx_y"},
        {
            "id": "CPx_y",
            "type": "candidate-pair",
            "localCandidateId": "ILx",
            "remoteCandidateId": "IRy",
        },
        {
            "id": "CPother",
            "type": "candidate-pair",
            "localCandidateId": "IRy",
            "remoteCandidateId": "ILx",
        },
        local,
        {
            "id": "IRy",
            "type": "remote-candidate",
            "candidateType": "srflx",
            "protocol": "udp",
            "address": "203.0.113.9",
            "port": 61000,
        },
    ]


def test_the_selected_pair_is_the_transports_and_a_relay_names_its_server() -> None:
    pair = selected_pair(_pair_stats())
    assert pair is not None
    assert (pair.local.type, pair.local.address, pair.local.port) == ("relay", "192.0.2.10", 49152)
    assert (pair.remote.type, pair.remote.address, pair.remote.port) == (
        "srflx",
        "203.0.113.9",
        61000,
    )
    assert pair.relay is not None
    assert pair.relay.server == "192.0.2.10:5349"
    assert pair.relay.transport == "tls"
    assert pair.relay.server_url == "turns:192.0.2.10:5349?transport=tcp"
    direct = selected_pair(_pair_stats("host"))
    assert direct is not None and direct.relay is None


def test_no_selected_pair_before_ice_has_one() -> None:
    stats = _pair_stats()
    stats[0] = {"id": "T01", "type": "transport"}
    assert selected_pair(stats) is None
    assert selected_pair([]) is None


def _media(frames: int, samples: int, sent_bytes: int, lost: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": "COpus", "type": "codec", "clockRate": 48000},
        {
            "id": "IA",
            "type": "inbound-rtp",
            "kind": "audio",
            "codecId": "COpus",
            "packetsReceived": samples // 960,
            "packetsLost": lost,
            "jitter": 0.004,
            "totalSamplesReceived": samples,
            "bytesReceived": sent_bytes,
        },
        {
            "id": "IV",
            "type": "inbound-rtp",
            "kind": "video",
            "packetsReceived": frames * 3,
            "packetsLost": 0,
            "jitter": 0.010,
            "framesDecoded": frames,
            "bytesReceived": sent_bytes * 10,
        },
        {
            "id": "OA",
            "type": "outbound-rtp",
            "kind": "audio",
            "packetsSent": 100,
            "bytesSent": sent_bytes,
        },
        {"id": "RA", "type": "remote-inbound-rtp", "kind": "audio", "roundTripTime": 0.0123},
    ]


def test_media_figures_over_the_window() -> None:
    first = _media(frames=30, samples=48000, sent_bytes=10_000)
    last = _media(frames=90, samples=48000 * 3, sent_bytes=60_000, lost=2)
    audio = kind_stats("audio", first, last, window_s=2.0)
    assert audio.received is not None and audio.sent is not None
    assert audio.received.frames == 100  # 2 s of 20 ms frames
    assert audio.received.fps == pytest.approx(50.0)
    assert audio.received.jitter_ms == pytest.approx(4.0)  # Chromium's jitter is in seconds
    assert audio.received.packets_lost == 2
    assert audio.received.bitrate_kbps == pytest.approx(200.0)  # 50 kB in 2 s
    assert audio.sent.bitrate_kbps == pytest.approx(200.0)
    assert audio.rtt_ms == pytest.approx(12.3)
    video = kind_stats("video", first, last, window_s=2.0)
    assert video.received is not None
    assert video.received.frames == 60 and video.received.fps == pytest.approx(30.0)
    assert video.sent is None and video.rtt_ms is None  # no outbound video in these snapshots


def _command(role: str = "offer") -> CallCommand:
    return CallCommand.model_validate(
        {
            "role": role,
            "signaling_url_base": "http://192.0.2.11:8080",
            "room": "r1",
            "peer": "alice",
            "remote_peer": "bob",
            "ice_servers": [
                IceServer(urls=["turn:192.0.2.10:3478?transport=udp"], username="u", credential="p")
            ],
        }
    )


def test_the_result_puts_the_pages_times_on_the_shared_clock() -> None:
    mapping = ClockMapping(offset_s=-1_000_000.0, error_s=0.0002)
    page = {"offer_created": 1_000_001_000.0, "dc_open": 1_000_001_250.0, "call_started": 1e9}
    report = {
        "connected": True,
        "error": None,
        "phase_pt": page,
        "local_candidates": [{"candidate": HOST, "url": None, "pt": 1e9}],
        "remote_candidates": [SRFLX, HOST],
        "candidate_errors": [],
        "dc_rtt_ms": 1.5,
        "dc_bytes": 1000,
        "dc_goodput_mbps": 12.0,
        "disconnects": 1,
        "disconnected_s": 0.75,
        "stats": _pair_stats("host"),
    }
    result = build_result(_command(), report, mapping, close_s=0.002)
    assert result.phase_t["offer_created"] == pytest.approx(1.0)
    assert result.phase_t["call_started"] == pytest.approx(0.0)
    assert result.setup_s == pytest.approx(0.25)
    assert result.clock_error_ms == pytest.approx(0.2)
    assert result.local_candidates == {"host": 1}
    assert result.remote_candidates == {"srflx": 1, "host": 1}
    assert result.selected_pair is not None and result.selected_pair.local.type == "host"
    assert (result.disconnects, result.disconnected_s, result.close_s) == (1, 0.75, 0.002)
    assert result.turn_attempts == []  # the TURN URL gave neither a candidate nor an error


def test_a_failed_call_keeps_its_error() -> None:
    report = {
        "connected": False,
        "error": "turn-auth",
        "error_detail": "no local candidate: the TURN server answered 401",
        "phase_pt": {"answer_received": 5.0},  # an answerer never has offer_received here
        "stats": [],
    }
    result = build_result(_command("answer"), report, ClockMapping(0.0, 0.001), close_s=None)
    assert (result.error, result.connected, result.setup_s) == ("turn-auth", False, None)
    assert result.selected_pair is None


def test_a_pair_gone_by_the_end_is_the_one_seen_when_connected() -> None:
    """The peer closed first: this side's last snapshot has no selected pair any more, so the
    result keeps the pair of the snapshot taken when the connection came up (a relay with its
    server: what relay_region is read from)."""
    report = {"connected": True, "phase_pt": {}, "stats": [], "connected_stats": _pair_stats()}
    result = build_result(_command(), report, ClockMapping(0.0, 0.001), close_s=None)
    assert result.selected_pair is not None and result.selected_pair.relay is not None
    assert result.selected_pair.relay.server == "192.0.2.10:5349"
    later = {**report, "stats": _pair_stats("host")}  # the end's own pair wins when it has one
    final = build_result(_command(), later, ClockMapping(0.0, 0.001), close_s=None)
    assert final.selected_pair is not None and final.selected_pair.local.type == "host"


def test_the_pair_in_use_before_closing_wins_over_the_first_one() -> None:
    """libwebrtc may move a call to another pair after it connected (to the higher-priority
    relay once its checks succeed): when the end's snapshot has no pair any more, the one taken
    before the closing exchange, both sides still open, is the call's pair, not the first."""
    report = {
        "connected": True,
        "phase_pt": {},
        "stats": [],
        "open_stats": _pair_stats("host"),
        "connected_stats": _pair_stats(),
    }
    result = build_result(_command(), report, ClockMapping(0.0, 0.001), close_s=None)
    assert result.selected_pair is not None and result.selected_pair.local.type == "host"


def test_agent_argv_names_the_namespace_and_profile(tmp_path: Any) -> None:
    argv = agent_argv("sn-abc-alice", tmp_path / "p", trust=[tmp_path / "cert.pem"])
    assert argv[1:3] == ["-m", "simnet.peer.chromium"]
    assert argv[argv.index("--netns") + 1] == "sn-abc-alice"
    assert argv[argv.index("--profile") + 1] == str(tmp_path / "p")
    assert argv[argv.index("--trust") + 1] == str(tmp_path / "cert.pem")


def test_a_missing_browser_says_how_to_get_one(tmp_path: Any) -> None:
    with pytest.raises(EnvironmentProblem) as info:
        require_chromium(str(tmp_path / "no-such-chromium"))
    assert "no-such-chromium" in info.value.message
    assert info.value.fix is not None and "apt-get install chromium" in info.value.fix

"""A typical result row (a relayed call with audio) and the peer results it is made of."""

from __future__ import annotations

from simnet.call.row import call_row
from simnet.peer.protocol import (
    CallResult,
    CandidateInfo,
    MediaKindStats,
    ReceivedStats,
    RelayInfo,
    SelectedPair,
    SentStats,
)
from simnet.results.schema import ResultRow


def call_results() -> tuple[CallResult, CallResult]:
    relay = RelayInfo(server_url="turn:192.0.2.10:3478", server="192.0.2.10:3478", transport="udp")
    pair = SelectedPair(
        local=CandidateInfo(type="relay", protocol="udp", address="192.0.2.10", port=50000),
        remote=CandidateInfo(type="srflx", protocol="udp", address="198.51.100.2", port=4000),
        relay=relay,
    )
    audio = MediaKindStats(
        kind="audio",
        sent=SentStats(packets=100, bytes=8000, bitrate_kbps=32.0),
        received=ReceivedStats(
            packets=99, packets_lost=1, jitter_ms=2.0, frames=99, fps=50.0, bitrate_kbps=31.0
        ),
        rtt_ms=20.0,
    )
    offer = CallResult(
        role="offer",
        connected=True,
        selected_pair=pair,
        phase_t={"offer_created": 1.0, "gathering_done": 1.1, "ice_connected": 1.3,
                 "dc_open": 1.4, "call_started": 0.9},
        setup_s=0.4,
        dc_rtt_ms=20.5,
        media=[audio],
    )  # fmt: skip
    answer = CallResult(
        role="answer",
        connected=True,
        phase_t={"gathering_done": 1.15, "dc_open": 1.41, "offer_received": 1.05},
        dc_bytes=1000,
        dc_goodput_mbps=50.0,
    )
    return offer, answer


def result_row(**fields: object) -> ResultRow:
    base: dict[str, object] = {
        "call": call_row(*call_results()),
        "scenario": "s",
        "scenario_hash": "abc",
        "seed": 0,
        "run": 0,
        "run_id": "r1",
        "wall_ms": 1500.0,
    }
    return ResultRow(**{**base, **fields})  # type: ignore[arg-type]

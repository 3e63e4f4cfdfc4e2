"""The result row's schema: the stored column names users already have, a `schema_version` on
every row, and older results (without the column) still read, while rows of a newer simnet are
refused rather than misread."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

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
from simnet.results import ResultStore, load
from simnet.results.long import media_streams, timeline_events
from simnet.results.schema import (
    LEGACY_VERSION,
    SCHEMA_VERSION,
    CallOutcome,
    EmulatorFigures,
    ResultRow,
    SchemaError,
)
from simnet.results.store import environment

# The columns a relayed call with audio is stored with (the names rows had before the schema).
STORED_CALL_COLUMNS = [
    "connected", "error", "error_detail", "path", "local_candidate", "remote_candidate",
    "local_protocol", "relay_protocol", "relay_server", "ice_connect_ms", "setup_ms",
    "offerer_offer_created_ms", "offerer_gathering_done_ms", "offerer_ice_connected_ms",
    "offerer_dc_open_ms", "answerer_gathering_done_ms", "answerer_dc_open_ms",
    "dc_goodput_mbps", "rtt_ms", "dc_bytes",
    "offerer_audio_sent_kbps", "offerer_audio_recv_fps", "offerer_audio_recv_frames",
    "offerer_audio_recv_lost", "offerer_audio_recv_jitter_ms", "offerer_audio_recv_kbps",
    "offerer_audio_rtt_ms", "ice_disconnects", "ice_disconnected_ms", "turn_attempts",
    "relay_region", "offerer_peer", "answerer_peer", "offerer_peer_version",
    "answerer_peer_version",
]  # fmt: skip
IDENTITY = ["scenario", "scenario_hash", "seed", "run", "run_id", "wall_ms"]


def _results() -> tuple[CallResult, CallResult]:
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


def _row(**fields: object) -> ResultRow:
    base: dict[str, object] = {
        "call": call_row(*_results()),
        "scenario": "s",
        "scenario_hash": "abc",
        "seed": 0,
        "run": 0,
        "run_id": "r1",
        "wall_ms": 1500.0,
    }
    return ResultRow(**{**base, **fields})  # type: ignore[arg-type]


def test_the_row_keeps_the_stored_column_names() -> None:
    row = _row()
    # every column rows have always had, in their order; `overrides` (the variant) came later
    assert list(row) == ["schema_version", *STORED_CALL_COLUMNS, *IDENTITY, "overrides"]
    assert row["overrides"] == []
    assert row["schema_version"] == SCHEMA_VERSION
    assert row["offerer_dc_open_ms"] == pytest.approx(400.0)
    assert row["answerer_dc_open_ms"] == pytest.approx(410.0)
    assert row["relay_protocol"] == "udp" and row["path"] == "relay"


def test_emulator_timeline_and_cell_columns_join_the_row() -> None:
    figures = EmulatorFigures(
        emulator_packets=10, emulator_peak_pps=5, emulator_dropped=0, emulator_limited=False
    )
    row = _row(emulator=figures, timeline={"event0_at_ms": 1.0}, cell={"nat_a": "open"})
    placed = row.placed(run=3, sweep="x")
    assert placed["run"] == 3 and placed["sweep"] == "x" and placed["nat_a"] == "open"
    assert placed["emulator_limited"] is False and placed["event0_at_ms"] == 1.0
    assert row["run"] == 0  # placing a row makes a new one


def test_a_cell_column_cannot_overwrite_the_row() -> None:
    with pytest.raises(ValueError, match="overwrite"):
        _row(cell={"connected": False})
    with pytest.raises(ValueError, match="overwrite"):
        _row(timeline={"run": 7})


def test_milestone_and_media_columns_are_checked() -> None:
    with pytest.raises(ValueError, match="milestone"):
        CallOutcome(connected=True, milestones={"offerer_nonsense_ms": 1.0})
    with pytest.raises(ValueError, match="media"):
        CallOutcome(connected=True, media={"offerer_smell_kbps": 1.0})


def test_a_stored_row_reads_back_with_its_version(tmp_path: Path) -> None:
    ResultStore(tmp_path, "s").write(_row())
    frame = load(tmp_path)
    assert frame.loc[0, "schema_version"] == SCHEMA_VERSION
    assert set(_row()) | set(environment()) == set(frame.columns)


def test_results_without_a_schema_version_read_as_version_1(tmp_path: Path) -> None:
    """Rows stored before the column existed, beside new ones: both read, old ones as v1."""
    old = {
        k: v for k, v in _row().columns().items() if k not in ("schema_version", "turn_attempts")
    }
    pd.DataFrame([old]).to_parquet(tmp_path / "old.parquet", index=False)
    ResultStore(tmp_path, "s").write(_row())
    frame = load(tmp_path)
    assert sorted(frame["schema_version"].tolist()) == [LEGACY_VERSION, SCHEMA_VERSION]
    assert frame["connected"].all()
    only_old = load(tmp_path / "old.parquet")
    assert only_old["schema_version"].tolist() == [LEGACY_VERSION]


def test_rows_before_peer_kinds_read_as_aiortc(tmp_path: Path) -> None:
    """Version 2 rows have no peer columns: every peer then was simnet's aiortc agent, and a
    version 3 row keeps what it says (Chromium here)."""
    old = {
        k: v
        for k, v in _row().columns().items()
        if not k.endswith(("_peer", "_peer_version")) and k != "turn_attempts"
    }
    pd.DataFrame([{**old, "schema_version": 2}]).to_parquet(tmp_path / "v2.parquet", index=False)
    chromium = _row(call=call_row(*_results()).model_copy(update={"offerer_peer": "chromium"}))
    ResultStore(tmp_path, "s").write(chromium)
    frame = load(tmp_path).sort_values("schema_version")
    assert frame["schema_version"].tolist() == [2, SCHEMA_VERSION]
    assert frame["offerer_peer"].tolist() == ["aiortc", "chromium"]
    assert frame["answerer_peer"].tolist() == ["aiortc", None]


def test_rows_of_a_newer_simnet_are_refused(tmp_path: Path) -> None:
    newer = {**_row().columns(), "schema_version": SCHEMA_VERSION + 1, "turn_attempts": "[]"}
    pd.DataFrame([newer]).to_parquet(tmp_path / "new.parquet", index=False)
    with pytest.raises(SchemaError, match="newer"):
        load(tmp_path)


def test_long_tables_hold_one_row_per_event_and_per_stream(tmp_path: Path) -> None:
    """Derived from stored rows: a call with two timeline events and a call with none, the
    first with audio measured by the offerer only."""
    timeline = {
        "event0_action": "cut", "event0_target": "alice", "event0_noticed_ms": 2600.0,
        "event1_action": "restore", "event1_target": "alice", "event1_noticed_ms": None,
        "recovered": True,
    }  # fmt: skip
    store = ResultStore(tmp_path, "s")
    store.write(_row(timeline=timeline))
    plain = _row(run=1, call=CallOutcome(connected=False, error="timeout:ice"))
    store.write(plain)
    frame = load(tmp_path)
    events = timeline_events(frame)
    assert events[["run", "event", "action", "target"]].values.tolist() == [
        [0, 0, "cut", "alice"],
        [0, 1, "restore", "alice"],
    ]
    assert events.loc[0, "noticed_ms"] == 2600.0
    streams = media_streams(frame)
    assert streams[["run", "side", "kind"]].values.tolist() == [[0, "offerer", "audio"]]
    assert streams.loc[0, "recv_lost"] == 1 and streams.loc[0, "sent_kbps"] == 32.0

"""The result row's schema: the stored column names users already have, a `schema_version` on
every row, and older results (without the column) still read, while rows of a newer simnet are
refused rather than misread."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from simnet.call.row import call_row
from simnet.results import ResultStore, load
from simnet.results.long import media_streams, timeline_events
from simnet.results.schema import (
    LEGACY_VERSION,
    SCHEMA_VERSION,
    CallOutcome,
    EmulatorFigures,
    SchemaError,
)
from simnet.results.store import environment
from tests.unit.rows import call_results, result_row

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


def test_the_row_keeps_the_stored_column_names() -> None:
    row = result_row()
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
    row = result_row(emulator=figures, timeline={"event0_at_ms": 1.0}, cell={"nat_a": "open"})
    placed = row.placed(run=3, sweep="x")
    assert placed["run"] == 3 and placed["sweep"] == "x" and placed["nat_a"] == "open"
    assert placed["emulator_limited"] is False and placed["event0_at_ms"] == 1.0
    assert row["run"] == 0  # placing a row makes a new one


def test_a_cell_column_cannot_overwrite_the_row() -> None:
    with pytest.raises(ValueError, match="overwrite"):
        result_row(cell={"connected": False})
    with pytest.raises(ValueError, match="overwrite"):
        result_row(timeline={"run": 7})


def test_milestone_and_media_columns_are_checked() -> None:
    with pytest.raises(ValueError, match="milestone"):
        CallOutcome(connected=True, milestones={"offerer_nonsense_ms": 1.0})
    with pytest.raises(ValueError, match="media"):
        CallOutcome(connected=True, media={"offerer_smell_kbps": 1.0})


def test_a_stored_row_reads_back_with_its_version(tmp_path: Path) -> None:
    ResultStore(tmp_path, "s").write(result_row())
    frame = load(tmp_path)
    assert frame.loc[0, "schema_version"] == SCHEMA_VERSION
    assert set(result_row()) | set(environment()) == set(frame.columns)


def test_results_without_a_schema_version_read_as_version_1(tmp_path: Path) -> None:
    """Rows stored before the column existed, beside new ones: both read, old ones as v1."""
    old = {
        k: v
        for k, v in result_row().columns().items()
        if k not in ("schema_version", "turn_attempts")
    }
    pd.DataFrame([old]).to_parquet(tmp_path / "old.parquet", index=False)
    ResultStore(tmp_path, "s").write(result_row())
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
        for k, v in result_row().columns().items()
        if not k.endswith(("_peer", "_peer_version")) and k != "turn_attempts"
    }
    pd.DataFrame([{**old, "schema_version": 2}]).to_parquet(tmp_path / "v2.parquet", index=False)
    chromium = result_row(
        call=call_row(*call_results()).model_copy(update={"offerer_peer": "chromium"})
    )
    ResultStore(tmp_path, "s").write(chromium)
    frame = load(tmp_path).sort_values("schema_version")
    assert frame["schema_version"].tolist() == [2, SCHEMA_VERSION]
    assert frame["offerer_peer"].tolist() == ["aiortc", "chromium"]
    assert frame["answerer_peer"].tolist() == ["aiortc", None]


def test_rows_of_a_newer_simnet_are_refused(tmp_path: Path) -> None:
    newer = {**result_row().columns(), "schema_version": SCHEMA_VERSION + 1, "turn_attempts": "[]"}
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
    store.write(result_row(timeline=timeline))
    plain = result_row(run=1, call=CallOutcome(connected=False, error="timeout:ice"))
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

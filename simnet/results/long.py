"""Long tables beside the wide row: one row per timeline event, one per media stream.

The stored row stays wide (its column names are what users have), but per-event and per-kind
figures are awkward there: `event3_noticed_ms`, `answerer_video_recv_fps`. These functions
derive tidy tables from loaded rows (`simnet.results.load`), so they work on any stored result,
old or new, and need nothing written beside the Parquet files. Each long row keeps the columns
that identify its call (scenario, run id, run, and the job's cell columns when present).
"""

from __future__ import annotations

import re

import pandas as pd

from simnet.results.schema import MEDIA_COLUMN

EVENT_COLUMN = re.compile(r"^event(\d+)_(.+)$")
CALL_KEYS = (
    "scenario", "run_id", "run", "sweep", "point_id", "repetition", "nat_a", "nat_b",
)  # fmt: skip


def _keys(frame: pd.DataFrame) -> list[str]:
    axes = [c for c in frame.columns if str(c).startswith("axis.")]
    return [c for c in CALL_KEYS if c in frame.columns] + axes


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and value != value)


def timeline_events(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per timeline event of every call: `event` (its index in the call's timeline,
    in time order) and its figures without the `event<i>_` prefix (`action`, `target`, `at_ms`,
    `noticed_ms`, `recovered_ms`, `failed_ms`, `recovery_ms`, `path_rtt_ms`, ...)."""
    keys = _keys(frame)
    columns: dict[int, dict[str, str]] = {}
    for column in frame.columns:
        match = EVENT_COLUMN.match(str(column))
        if match:
            columns.setdefault(int(match[1]), {})[match[2]] = column
    records = []
    for _, row in frame.iterrows():
        for index in sorted(columns):
            fields = columns[index]
            if "action" not in fields or not _present(row[fields["action"]]):
                continue  # this call's timeline has fewer events
            record = {key: row[key] for key in keys}
            record["event"] = index
            record.update({name: row[column] for name, column in fields.items()})
            records.append(record)
    return pd.DataFrame.from_records(records)


def media_streams(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per media stream of every call: `side` (offerer/answerer, who measured), `kind`
    (audio/video) and its figures (`sent_kbps`, `recv_fps`, `recv_frames`, `recv_lost`,
    `recv_jitter_ms`, `recv_kbps`, `rtt_ms`)."""
    keys = _keys(frame)
    columns: dict[tuple[str, str], dict[str, str]] = {}
    for column in frame.columns:
        match = MEDIA_COLUMN.match(str(column))
        if match:
            columns.setdefault((match[1], match[2]), {})[match[3]] = column
    records = []
    for _, row in frame.iterrows():
        for (side, kind), fields in sorted(columns.items()):
            figures = {name: row[column] for name, column in fields.items()}
            if not any(_present(v) for v in figures.values()):
                continue  # this call sent no such stream
            records.append({**{key: row[key] for key in keys}, "side": side, "kind": kind,
                            **figures})  # fmt: skip
    return pd.DataFrame.from_records(records)

"""The rows as the report reads them: uniform types whatever wrote them, each row's group
(scenario and variant) and stacks, and the small formatting rules every section shares."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from simnet.callspec import ROW_MILESTONES
from simnet.peerkinds import DEFAULT_KIND
from simnet.quantile import quantile
from simnet.results.schema import call_outcome_of
from simnet.results.stats import succeeded
from simnet.scenario.family import V6Filtering

PRESET_ORDER = ("open", "full-cone", "restricted-cone", "port-restricted-cone", "symmetric")
#: the IPv6-only matrix's axis (`nats.X.v6_filtering`), from the least to the most filtering
V6_FILTERING_ORDER = tuple(f.value for f in V6Filtering)
NUMERIC = ("setup_ms", "ice_connect_ms", "dc_goodput_mbps", "rtt_ms", "wall_ms")
DASH = "-"


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Uniform types whatever wrote the rows: `connected` bool, measurements float; `succeeded`
    and `outcome` as every output has them (`simnet.results.schema.call_succeeded`: a call that
    connected and ended with an error failed); each row's `stack` and `group`."""
    frame = frame.copy()
    connected = frame["connected"] if "connected" in frame.columns else False
    frame["connected"] = pd.Series(connected, index=frame.index).fillna(False).astype(bool)
    for column in (*NUMERIC, *phase_columns(frame)):
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    none = pd.Series(None, index=frame.index, dtype=object)
    path = frame["path"] if "path" in frame.columns else none
    error = frame["error"] if "error" in frame.columns else none
    frame["succeeded"] = succeeded(frame)
    frame["outcome"] = [
        call_outcome_of(c, e, p)
        for c, e, p in zip(frame["connected"], error.tolist(), path.tolist(), strict=True)
    ]
    if "scenario" not in frame.columns:
        frame["scenario"] = "?"
    frame["stack"] = stack_labels(frame)
    frame["group"] = group_labels(frame)
    if frame["stack"].nunique() > 1:
        # rows of different stacks measured different ICE implementations: never one group
        frame["group"] = frame["group"] + ", " + frame["stack"]
    return frame


def stack_labels(frame: pd.DataFrame) -> pd.Series:
    """Each row's WebRTC stacks: "aiortc", "chromium", or "aiortc -> chromium" (offerer's,
    answerer's) for a mixed call; rows from before peer kinds were all aiortc."""

    def kind(column: str) -> pd.Series:
        values = frame[column] if column in frame.columns else pd.Series(None, index=frame.index)
        return values.astype(object).where(values.notna(), DEFAULT_KIND).astype(str)

    offerer, answerer = kind("offerer_peer"), kind("answerer_peer")
    return pd.Series(
        [o if o == a else f"{o} -> {a}" for o, a in zip(offerer, answerer, strict=True)],
        index=frame.index,
    )


def _overrides(value: Any) -> list[str] | None:
    """A row's `overrides` (stored as JSON text; a list where rows came from memory); None where
    the row does not say."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v) for v in value]
    return None


def variant_label(overrides: Sequence[str]) -> str:
    """`[a=1, b=2]` for a list of `--set`s (sorted: the order they were given changes nothing)."""
    return "[" + ", ".join(sorted(overrides)) + "]" if overrides else ""


def group_labels(frame: pd.DataFrame) -> pd.Series:
    """Each row's group: its scenario, and its variant where it has one (`prepare` adds the
    stack where the rows hold several)."""
    scenario = frame["scenario"].map(str)
    stored = frame["overrides"] if "overrides" in frame.columns else [None] * len(frame)
    variants = pd.Series(
        [None if (o := _overrides(v)) is None else variant_label(o) for v in stored],
        index=frame.index,
        dtype=object,
    )
    if "scenario_hash" in frame.columns:
        # older rows: only the scenario's hash tells variants apart, where a scenario has several
        hashes = frame["scenario_hash"].map(lambda h: None if missing(h) else str(h))
        several = hashes.groupby(scenario).transform(lambda h: h.nunique() > 1)
        unknown = variants.isna() & several
        variants = variants.where(~unknown, "#" + hashes.str[:8])
    variants = variants.fillna("")
    return pd.Series(
        [f"{s} {v}" if v else s for s, v in zip(scenario, variants, strict=True)],
        index=frame.index,
    )


def phase_columns(frame: pd.DataFrame) -> list[str]:
    """Phase columns present, in call order (offerer and answerer side by side)."""
    return [
        f"{side}_{phase}_ms"
        for phase in ROW_MILESTONES
        for side in ("offerer", "answerer")
        if f"{side}_{phase}_ms" in frame.columns
    ]


def finite_values(series: pd.Series) -> np.ndarray[Any, np.dtype[np.float64]]:
    array: np.ndarray[Any, np.dtype[np.float64]] = pd.to_numeric(series, errors="coerce").to_numpy(
        dtype=float
    )
    finite: np.ndarray[Any, np.dtype[np.float64]] = array[np.isfinite(array)]
    return finite


def median(series: pd.Series) -> float | None:
    return quantile(finite_values(series), 0.5)


def fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    return DASH if value is None else f"{value:.{digits}f}{unit}"


def label(value: Any) -> str:
    """Axis values as people write them: lists stored as JSON text come back as `[udp]`."""
    if isinstance(value, str) and value.startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def ordered(values: Sequence[Any]) -> list[str]:
    labels = list(dict.fromkeys(label(v) for v in values if not missing(v)))
    order = PRESET_ORDER if set(labels) - set(V6_FILTERING_ORDER) else V6_FILTERING_ORDER
    known = [p for p in order if p in labels]
    return known + sorted(v for v in labels if v not in known)


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def group_columns(frame: pd.DataFrame) -> list[str]:
    return ["group"] + (["sweep"] if "sweep" in frame.columns else [])

"""Per-cell statistics of result rows: rates with Wilson intervals, quantiles with bootstrap CIs.

Why intervals and not bare numbers: a benchmark of ten calls per cell gives a median that moves by
several percent from one run of the suite to the next. A number without its uncertainty invites
reading noise as a change; the interval says how much of a difference the data can support.

A call succeeded when it connected and ended without an error (`simnet.results.schema.
call_succeeded`, the definition `simnet run` judges calls by): a call that connected and then
timed out on its data channel failed. Latency and throughput describe *successful* calls only (a
failed call's partial timings are not comparable with a finished call's), and the success rate
accounts for the rest. The TURN fallback (relay) rate is likewise a share of successful calls: a
failed call's selected pair is not an outcome.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypedDict, Unpack

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as sps

from simnet.peerkinds import DEFAULT_KIND
from simnet.quantile import METHOD, quantile
from simnet.results.schema import PEER_KIND_COLUMNS, call_succeeded

#: The per-run measurements summarised and compared, in display order.
METRICS: tuple[str, ...] = ("setup_ms", "ice_connect_ms", "dc_goodput_mbps", "rtt_ms")

#: Columns that identify a cell when present; sweep axes (`axis.*`) are added after them.
#: The peer kinds are part of a cell: an aiortc call and a Chromium call are never pooled.
CELL_COLUMNS: tuple[str, ...] = ("scenario", "nat_a", "nat_b", *PEER_KIND_COLUMNS)
DEFAULT_PEER = DEFAULT_KIND  # rows from before peer kinds
AXIS_PREFIX = "axis."

#: Bootstrap resamples: 4999 keeps the Monte Carlo error of a 95% percentile bound well below the
#: sampling error of the tens of runs a cell has, at a few milliseconds per interval.
DEFAULT_RESAMPLES = 4999

#: a cell's values of its cell columns: plain Python (None where missing), in column order
CellKey = tuple[object, ...]
FloatArray = npt.NDArray[np.float64]


class BootstrapOptions(TypedDict, total=False):
    """The settings of a bootstrap interval (`bootstrap_quantile`'s keyword arguments)."""

    confidence: float
    n_resamples: int
    seed: int


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval; NaN where the data cannot support one.

    NaN rather than None so a column of intervals stays numeric in a DataFrame.
    """

    estimate: float
    low: float
    high: float
    n: int

    @property
    def defined(self) -> bool:
        """Whether there is an estimate at all (n = 0 has none)."""
        return not math.isnan(self.estimate)

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


NAN = float("nan")


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(sps.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of a proportion `successes / n`.

    Why Wilson and not the textbook p ± z·sqrt(p(1-p)/n): with the few runs a benchmark cell has,
    rates are often exactly 0 or 1, where the textbook interval collapses to a width of zero and
    claims certainty; Wilson's stays honest (10/10 gives [0.72, 1]) and never leaves [0, 1].
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return Interval(NAN, NAN, NAN, 0)
    z = _z(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # Exact at the edges (0/n has lower bound 0, n/n upper bound 1); rounding must not break that.
    low = 0.0 if successes == 0 else max(0.0, min(p, centre - half))
    high = 1.0 if successes == n else min(1.0, max(p, centre + half))
    return Interval(p, low, high, n)


def _finite(values: Iterable[object]) -> FloatArray:
    """Values as floats, without missing, non-numeric and infinite ones."""
    numeric = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")
    array: FloatArray = np.asarray(numeric, dtype=np.float64)
    return array[np.isfinite(array)]


def bootstrap_quantile(
    values: Iterable[object],
    q: float,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The `q`-quantile (0..1, `simnet.quantile`) of `values` with a percentile-bootstrap CI.

    Missing and non-finite values are dropped. n = 0 gives no estimate; n = 1 an estimate without
    an interval (one run says nothing about spread); identical values a zero-width interval.

    Why the percentile method rather than BCa: BCa's acceleration comes from a jackknife, which is
    inconsistent for sample quantiles and degenerates on the ties that rounded timings produce;
    the percentile interval is well-behaved for medians and upper quantiles. Each call seeds its
    own generator, so a cell's interval depends only on that cell's data, not on which other cells
    were summarised before it.

    A percentile interval is read off a discrete bootstrap distribution; on tiny samples it can,
    rarely, exclude the sample quantile itself. It is then widened to include it, so a report never
    shows an estimate outside its own interval (slightly conservative, never anti-conservative).
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q}")
    _z(confidence)  # validates
    data = _finite(values)
    n = int(data.size)
    estimate = quantile(data, q)
    if estimate is None:
        return Interval(NAN, NAN, NAN, 0)
    if n == 1:
        return Interval(estimate, NAN, NAN, 1)
    if float(data.min()) == float(data.max()):
        return Interval(estimate, estimate, estimate, n)

    def statistic(sample: FloatArray, axis: int = -1) -> FloatArray:
        # every resample at once, by the method of `quantile`
        return np.asarray(np.quantile(sample, q, axis=axis, method=METHOD), dtype=np.float64)

    result = sps.bootstrap(
        (data,),
        statistic,
        n_resamples=n_resamples,
        vectorized=True,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    # A quantile of resamples lies within the data's range; interpolation rounding can overshoot
    # it by an ulp, which would put the bound beyond every value observed.
    smallest, largest = float(data.min()), float(data.max())
    low = max(smallest, float(result.confidence_interval.low))
    high = min(largest, float(result.confidence_interval.high))
    return Interval(estimate, min(low, estimate), max(high, estimate), n)


def median_ci(values: Iterable[object], **options: Unpack[BootstrapOptions]) -> Interval:
    """The median with a bootstrap CI (see `bootstrap_quantile`)."""
    return bootstrap_quantile(values, 0.5, **options)


def p95_ci(values: Iterable[object], **options: Unpack[BootstrapOptions]) -> Interval:
    """The 95th percentile with a bootstrap CI (see `bootstrap_quantile`).

    With fewer than about 20 runs the p95 is essentially the largest value and its interval is
    wide: read it as "the slow tail", not as a precise number.
    """
    return bootstrap_quantile(values, 0.95, **options)


def succeeded(frame: pd.DataFrame) -> pd.Series:
    """Per row, whether the call succeeded: connected and no error (`call_succeeded`)."""
    if "connected" not in frame.columns:
        return pd.Series(False, index=frame.index)
    errors = frame["error"].tolist() if "error" in frame.columns else [None] * len(frame)
    return pd.Series(
        [call_succeeded(c, e) for c, e in zip(frame["connected"].tolist(), errors, strict=True)],
        index=frame.index,
        dtype=bool,
    )


def success_counts(frame: pd.DataFrame) -> tuple[int, int]:
    """(successful runs, runs): connected and no error, as `simnet run` judges a call."""
    return int(succeeded(frame).sum()), len(frame)


def relay_counts(frame: pd.DataFrame) -> tuple[int, int]:
    """(successful runs that went through TURN, successful runs): the TURN fallback counts."""
    ok = frame[succeeded(frame)]
    if "path" not in ok.columns:
        return 0, len(ok)
    return int((ok["path"] == "relay").sum()), len(ok)


def success_rate(frame: pd.DataFrame, confidence: float = 0.95) -> Interval:
    """Share of runs that succeeded (connected, no error), with its Wilson interval."""
    return wilson_interval(*success_counts(frame), confidence)


def relay_rate(frame: pd.DataFrame, confidence: float = 0.95) -> Interval:
    """Share of successful runs whose selected pair was relayed (TURN fallback), Wilson
    interval."""
    return wilson_interval(*relay_counts(frame), confidence)


def metric_values(frame: pd.DataFrame, metric: str) -> FloatArray:
    """The finite values of `metric` over the successful runs of `frame` (empty if absent)."""
    if metric not in frame.columns:
        return np.empty(0, dtype=np.float64)
    return _finite(frame.loc[succeeded(frame), metric])


def cell_columns(*frames: pd.DataFrame) -> list[str]:
    """The columns that identify a cell, over all `frames`: scenario, nat_a, nat_b where present,
    then every sweep axis (`axis.*`) in name order.

    Taken over all frames so a baseline and a current run are cut into the same cells even when
    one of them lacks a column (its rows then have no value there).
    """
    present = {c for frame in frames for c in frame.columns}
    # the peer kinds only where some call was not aiortc's: all-aiortc results (all results
    # before Chromium peers) keep the cells and labels they always had
    if all(
        frame[c].dropna().eq(DEFAULT_PEER).all()
        for frame in frames
        for c in PEER_KIND_COLUMNS
        if c in frame.columns
    ):
        present -= set(PEER_KIND_COLUMNS)
    axes = sorted(c for c in present if str(c).startswith(AXIS_PREFIX))
    return [c for c in CELL_COLUMNS if c in present] + axes


def _plain(value: object) -> object:
    """A cell key value as plain Python: missing values are None, numpy scalars unwrapped."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # lists and other non-scalars
        pass
    if isinstance(value, np.generic):
        return value.item()
    return value


def cell_sort_key(key: CellKey) -> tuple[tuple[int, float, str], ...]:
    """Missing first, then numbers by value (axis values sort 2 < 10), then text."""
    return tuple(
        (0, 0.0, "")
        if v is None
        else (1, float(v), "")
        if isinstance(v, int | float) and not isinstance(v, bool)
        else (2, 0.0, str(v))
        for v in key
    )


def group_cells(frame: pd.DataFrame, by: Sequence[str]) -> dict[CellKey, pd.DataFrame]:
    """Rows of `frame` per cell, keyed by plain-Python tuples (None where a column is missing or
    empty), in a stable order. Missing key columns count as all-None, so frames with different
    columns group into comparable keys."""
    if frame.empty:
        return {}
    # Plain lists, not Series.map: a typed column would turn None back into NaN.
    keys = [
        [_plain(v) for v in frame[c].tolist()] if c in frame.columns else [None] * len(frame)
        for c in by
    ]
    positions: dict[CellKey, list[int]] = {}
    for i, key in enumerate(zip(*keys, strict=True) if by else [()] * len(frame)):
        positions.setdefault(tuple(key), []).append(i)
    return {
        key: frame.iloc[positions[key]].reset_index(drop=True)
        for key in sorted(positions, key=cell_sort_key)
    }


def cell_label(key: CellKey, by: Sequence[str]) -> str:
    """A short human name for a cell: `nat-matrix symmetric->full-cone axis.loss=0.01`."""
    values = dict(zip(by, key, strict=True))
    parts: list[str] = []
    if values.get("scenario") is not None:
        parts.append(str(values["scenario"]))
    a, b = values.get("nat_a"), values.get("nat_b")
    if a is not None or b is not None:
        parts.append(f"{a if a is not None else '?'}->{b if b is not None else '?'}")
    for column in by:
        if column not in ("scenario", "nat_a", "nat_b") and values[column] is not None:
            parts.append(f"{column}={values[column]}")
    return " ".join(parts) or "all runs"


def summarize(
    df: pd.DataFrame,
    by: Sequence[str] | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per cell: runs, success and TURN-fallback rates with Wilson intervals, and median /
    p95 with bootstrap intervals of each metric in `METRICS` over the cell's successful runs.

    `by` defaults to `cell_columns(df)`. Columns: the `by` columns, `cell`, `n`, `succeeded`,
    `success_rate`, `success_low`, `success_high`, `relay_rate`, `relay_low`, `relay_high` (a
    share of the `succeeded` runs), then per metric M: `M_n`, `M_median`, `M_median_low`,
    `M_median_high`, `M_p95`, `M_p95_low`, `M_p95_high`. Undefined values are NaN.
    """
    columns = list(by) if by is not None else cell_columns(df)
    options: BootstrapOptions = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    records: list[dict[str, object]] = []
    for key, frame in group_cells(df, columns).items():
        record: dict[str, object] = dict(zip(columns, key, strict=True))
        record["cell"] = cell_label(key, columns)
        success = success_rate(frame, confidence)
        relay = relay_rate(frame, confidence)
        record.update(
            n=success.n,
            succeeded=relay.n,
            success_rate=success.estimate,
            success_low=success.low,
            success_high=success.high,
            relay_rate=relay.estimate,
            relay_low=relay.low,
            relay_high=relay.high,
        )
        for metric in METRICS:
            values = metric_values(frame, metric)
            record[f"{metric}_n"] = int(values.size)
            for name, compute in (("median", median_ci), ("p95", p95_ci)):
                interval = compute(values, **options)
                record[f"{metric}_{name}"] = interval.estimate
                record[f"{metric}_{name}_low"] = interval.low
                record[f"{metric}_{name}_high"] = interval.high
        records.append(record)
    return pd.DataFrame.from_records(records, columns=_summary_columns(columns))


def _summary_columns(by: Sequence[str]) -> list[str]:
    columns = [*by, "cell", "n", "succeeded", "success_rate", "success_low", "success_high",
               "relay_rate", "relay_low", "relay_high"]  # fmt: skip
    for metric in METRICS:
        columns.append(f"{metric}_n")
        for name in ("median", "p95"):
            columns += [f"{metric}_{name}", f"{metric}_{name}_low", f"{metric}_{name}_high"]
    return columns

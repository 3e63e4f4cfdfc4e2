"""Baseline comparison: which cells got worse, by a margin the data supports and that matters.

A benchmark that fails builds on noise gets switched off, so a change is a *regression* only when
three things hold at once:

1. it is **significant**: a Mann-Whitney U test (latency, throughput: distributions, no normality
   assumed, robust to the slow outliers calls have) or Fisher's exact test (success and TURN
   fallback rates: exact at the small run counts of a cell) gives p < alpha;
2. it is **large enough to matter**: the median moved by at least a relative share *and* an
   absolute floor per metric (10 % and 5 ms for set-up time by default), the rate by at least
   10 percentage points;
3. it goes in the **worse** direction (times and relay rate up, goodput and success rate down).

Both tests are two-sided: the same test reports improvements, and for regressions it is the
conservative choice (the one-sided p is half of it). alpha applies per comparison; with many cells
and metrics the effect floors are what keep the build-wide false alarm rate low.

When a cell has so few runs that even completely separated samples could not reach p < alpha
(e.g. 3 vs 3 runs: the smallest possible two-sided Mann-Whitney p is 0.1), the verdict is
`insufficient-data` rather than a misleading `unchanged`. By default such a cell passes (a
quick look at a few runs should not fail); as a gate, `strict` makes every cell that lacks the
runs for its tests (and every baseline cell missing from the current results) fail it, and
`min_runs` every cell with fewer runs than that on either side (`Comparison.short_of_runs`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, NotRequired, TypedDict

import numpy as np
import pandas as pd
from scipy import stats as sps

from simnet.results.schema import check_version
from simnet.results.stats import (
    DEFAULT_RESAMPLES,
    BootstrapOptions,
    CellKey,
    Interval,
    cell_columns,
    cell_label,
    cell_sort_key,
    group_cells,
    median_ci,
    metric_values,
    relay_counts,
    success_counts,
    wilson_interval,
)

Verdict = Literal["improved", "regressed", "unchanged", "insufficient-data"]
VERDICTS: tuple[Verdict, ...] = ("regressed", "improved", "insufficient-data", "unchanged")


@dataclass(frozen=True)
class MetricSpec:
    """What a compared quantity is: its unit, which way is better, and how it is tested."""

    name: str
    label: str
    unit: str
    higher_is_better: bool
    kind: Literal["distribution", "rate"]


@dataclass(frozen=True)
class MinEffect:
    """The smallest change worth failing a build for: both bounds must be reached.

    `relative` is a share of the baseline value (0.10 = 10 %), `absolute` is in the metric's unit
    (a fraction for rates: 0.10 = 10 percentage points). The relative bound ignores noise on large
    values, the absolute one on small values (10 % of a 3 ms RTT is scheduler jitter).
    """

    relative: float = 0.10
    absolute: float = 0.0


METRIC_SPECS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("setup_ms", "set-up", "ms", False, "distribution"),
        MetricSpec("ice_connect_ms", "ICE connect", "ms", False, "distribution"),
        MetricSpec("rtt_ms", "data-channel RTT", "ms", False, "distribution"),
        MetricSpec("dc_goodput_mbps", "data-channel goodput", "Mbit/s", True, "distribution"),
        MetricSpec("success_rate", "success rate", "fraction", True, "rate"),
        MetricSpec("relay_rate", "TURN fallback rate", "fraction", False, "rate"),
    )
}

#: Defaults: times need 10 % and 5 ms (2 ms for the short data-channel echo), goodput 10 % and
#: 1 Mbit/s, rates 10 percentage points. Tune per project with `compare(min_effect=...)`.
DEFAULT_MIN_EFFECT: dict[str, MinEffect] = {
    "setup_ms": MinEffect(0.10, 5.0),
    "ice_connect_ms": MinEffect(0.10, 5.0),
    "rtt_ms": MinEffect(0.10, 2.0),
    "dc_goodput_mbps": MinEffect(0.10, 1.0),
    "success_rate": MinEffect(0.0, 0.10),
    "relay_rate": MinEffect(0.0, 0.10),
}

#: Metadata whose change between baseline and current is worth a note next to the verdicts.
ENVIRONMENT_COLUMNS = (
    "simnet_version", "aiortc_version", "aioice_version", "coturn_version", "kernel",
)  # fmt: skip


class BenchmarkEntry(TypedDict):
    """One metric as benchmark-action/github-action-benchmark reads it."""

    name: str
    unit: str
    value: float
    range: NotRequired[str]  # the 95 % interval, where there is one
    extra: NotRequired[str]


@dataclass(frozen=True)
class Change:
    """One cell and metric: baseline vs current, the test, and the verdict.

    Values of rates are fractions (0..1); `change` is current - baseline in the metric's unit,
    `change_pct` relative to the baseline (None when the baseline is 0). `*_low`/`*_high` are the
    95 % intervals of the values (bootstrap for medians, Wilson for rates).
    """

    cell: str
    key: dict[str, object]
    metric: str
    unit: str
    higher_is_better: bool
    baseline: float | None
    current: float | None
    baseline_low: float | None
    baseline_high: float | None
    current_low: float | None
    current_high: float | None
    baseline_n: int
    current_n: int
    change: float | None
    change_pct: float | None
    p_value: float | None
    verdict: Verdict
    note: str = ""
    # both sides have runs (values), but too few for the test to reach p < alpha even if the
    # samples were completely apart: what `strict` fails. A metric one side has no values of
    # (all its calls failed, or no transfer was made) is not that: its success rate says it.
    underpowered: bool = False

    @property
    def spec(self) -> MetricSpec:
        return METRIC_SPECS[self.metric]


@dataclass(frozen=True)
class Comparison:
    """The outcome of `compare`: every cell-and-metric `Change`, plus what could not be matched."""

    changes: tuple[Change, ...]
    cell_columns: tuple[str, ...]
    alpha: float
    min_effect: Mapping[str, MinEffect]
    baseline_runs: int
    current_runs: int
    only_in_baseline: tuple[str, ...] = ()
    only_in_current: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    strict: bool = False  # a cell lacking the runs for its tests fails (`short_of_runs`)
    min_runs: int = 0  # a cell with fewer runs than this on either side fails

    @property
    def short_of_runs(self) -> list[str]:
        """The cells that fail the gate for lack of runs, each with why, in cell order (empty
        unless `strict` or `min_runs` asks): with `strict`, every cell where a test could not
        reach p < alpha for lack of runs and every baseline cell missing now; with `min_runs`,
        every cell with fewer runs than that on either side."""
        short: dict[str, str] = {}
        for c in self.changes:
            if self.strict and c.underpowered and c.cell not in short:
                short[c.cell] = f"{c.spec.label}: {c.note}"
        if self.min_runs:
            for c in self.changes:  # the success rate's n are the cell's runs
                few = min(c.baseline_n, c.current_n) < self.min_runs
                if c.metric == "success_rate" and few and c.cell not in short:
                    short[c.cell] = f"{c.baseline_n} vs {c.current_n} runs, minimum {self.min_runs}"
        if self.strict:
            short.update({cell: "no current runs" for cell in self.only_in_baseline})
        return [f"{cell}: {why}" for cell, why in short.items()]

    @property
    def failed(self) -> bool:
        """Whether the gate fails: a regression, or a cell short of runs."""
        return bool(self.regressions or self.short_of_runs)

    def with_verdict(self, verdict: Verdict) -> list[Change]:
        return [c for c in self.changes if c.verdict == verdict]

    @property
    def regressions(self) -> list[str]:
        """The cells with at least one regression, in cell order: what fails the build."""
        return list(dict.fromkeys(c.cell for c in self.with_verdict("regressed")))

    @property
    def cells(self) -> list[str]:
        return list(dict.fromkeys(c.cell for c in self.changes))

    def table(self) -> pd.DataFrame:
        """All changes as a DataFrame (one row per cell and metric), key columns first."""
        records = [{**c.key, **{k: v for k, v in asdict(c).items() if k != "key"}}
                   for c in self.changes]  # fmt: skip
        return pd.DataFrame.from_records(records)

    def as_json(self) -> dict[str, object]:
        """Everything, JSON-ready (no NaN: missing values are null)."""
        return {
            "alpha": self.alpha,
            "min_effect": {k: asdict(v) for k, v in self.min_effect.items()},
            "cell_columns": list(self.cell_columns),
            "baseline_runs": self.baseline_runs,
            "current_runs": self.current_runs,
            "regressions": self.regressions,
            "counts": {v: len(self.with_verdict(v)) for v in VERDICTS},
            "only_in_baseline": list(self.only_in_baseline),
            "only_in_current": list(self.only_in_current),
            "notes": list(self.notes),
            "strict": self.strict,
            "min_runs": self.min_runs,
            "short_of_runs": self.short_of_runs,
            "failed": self.failed,
            "changes": [_json_safe(asdict(c)) for c in self.changes],
        }

    def as_github_benchmark(self, bigger_is_better: bool = False) -> list[BenchmarkEntry]:
        """Current values for benchmark-action/github-action-benchmark.

        That action takes one direction per file (`customSmallerIsBetter` or
        `customBiggerIsBetter`), so this returns the metrics of one direction: by default times
        and the TURN fallback rate, with `bigger_is_better=True` goodput and the success rate.
        Names are stable (`<cell> <metric>`) so the action can chart them across commits; the
        value is the current median (rates in %), `range` its 95 % interval.
        """
        entries: list[BenchmarkEntry] = []
        for c in self.changes:
            if c.higher_is_better != bigger_is_better or c.current is None:
                continue
            scale = 100.0 if c.spec.kind == "rate" else 1.0
            value = c.current * scale
            entry: BenchmarkEntry = {
                "name": f"{c.cell} {c.metric}",
                "unit": "%" if c.spec.kind == "rate" else c.unit,
                "value": round(value, 4),
            }
            if c.current_low is not None and c.current_high is not None:
                entry["range"] = (
                    f"{c.current_low * scale:.4g} .. {c.current_high * scale:.4g} (95% CI)"
                )
            extra = [f"n={c.current_n}", f"verdict={c.verdict}"]
            if c.baseline is not None:
                extra.append(f"baseline={c.baseline * scale:.4g}")
            if c.p_value is not None:
                extra.append(f"p={c.p_value:.2g}")
            entry["extra"] = ", ".join(extra)
            entries.append(entry)
        return entries


def compare(
    baseline_df: pd.DataFrame,
    current_df: pd.DataFrame,
    *,
    alpha: float = 0.01,
    min_effect: Mapping[str, MinEffect] | None = None,
    by: Sequence[str] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """Compare two result sets cell by cell (see the module docstring for the rules).

    Cells are cut by `by`, default `cell_columns(baseline_df, current_df)` (scenario, nat_a,
    nat_b, axis.*). `min_effect` overrides `DEFAULT_MIN_EFFECT` per metric. Deterministic: the
    bootstrap intervals are seeded with `seed`.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    unknown = set(min_effect or {}) - set(METRIC_SPECS)
    if unknown:
        raise ValueError(f"unknown metric(s) in min_effect: {', '.join(sorted(unknown))}")
    effects = {**DEFAULT_MIN_EFFECT, **(min_effect or {})}
    baseline_df = check_version(baseline_df, "baseline")
    current_df = check_version(current_df, "current")
    columns = list(by) if by is not None else cell_columns(baseline_df, current_df)
    base_cells = group_cells(baseline_df, columns)
    current_cells = group_cells(current_df, columns)
    options: BootstrapOptions = {"n_resamples": n_resamples, "seed": seed}
    changes: list[Change] = []
    redefined: dict[str, list[str]] = {}  # "old -> new" scenario hashes: cells
    for key, base in base_cells.items():
        current = current_cells.get(key)
        if current is None:
            continue
        label = cell_label(key, columns)
        context = _Cell(label, dict(zip(columns, key, strict=True)), alpha, effects, options)
        changes += [context.rate(name, base, current) for name in ("success_rate", "relay_rate")]
        changes += [
            context.distribution(spec.name, base, current)
            for spec in METRIC_SPECS.values()
            if spec.kind == "distribution"
        ]
        before, after = _distinct(base, "scenario_hash"), _distinct(current, "scenario_hash")
        if before and after and before != after:
            redefined.setdefault(f"{', '.join(before)} -> {', '.join(after)}", []).append(label)
    # A changed scenario definition means its cells measure something else now: say so, once
    # per change (a matrix shares one scenario among its 25 cells).
    notes = _environment_notes(baseline_df, current_df) + [
        f"scenario definition changed ({hashes}) in {', '.join(labels)}"
        for hashes, labels in redefined.items()
    ]
    return Comparison(
        changes=tuple(changes),
        cell_columns=tuple(columns),
        alpha=alpha,
        min_effect=effects,
        baseline_runs=len(baseline_df),
        current_runs=len(current_df),
        only_in_baseline=_labels(base_cells.keys() - current_cells.keys(), columns),
        only_in_current=_labels(current_cells.keys() - base_cells.keys(), columns),
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class _Cell:
    """The comparisons of one matched cell, sharing its label, key and settings."""

    label: str
    key: dict[str, object]
    alpha: float
    effects: Mapping[str, MinEffect]
    options: BootstrapOptions

    def rate(self, metric: str, base: pd.DataFrame, current: pd.DataFrame) -> Change:
        counts = success_counts if metric == "success_rate" else relay_counts
        (kb, nb), (kc, nc) = counts(base), counts(current)
        b, c = wilson_interval(kb, nb), wilson_interval(kc, nc)
        if nb == 0 or nc == 0:
            runs = "successful runs" if metric == "relay_rate" else "runs"
            return self._change(metric, b, c, None, _missing(runs, nb, nc))
        extreme = float(sps.fisher_exact([[nb, 0], [0, nc]]).pvalue)
        if extreme >= self.alpha:
            return self._change(metric, b, c, None, _too_few(nb, nc, self.alpha), True)
        p = float(sps.fisher_exact([[kb, nb - kb], [kc, nc - kc]]).pvalue)
        return self._change(metric, b, c, p)

    def distribution(self, metric: str, base: pd.DataFrame, current: pd.DataFrame) -> Change:
        xb, xc = metric_values(base, metric), metric_values(current, metric)
        b, c = median_ci(xb, **self.options), median_ci(xc, **self.options)
        nb, nc = int(xb.size), int(xc.size)
        if nb == 0 or nc == 0:
            return self._change(metric, b, c, None, _missing("values", nb, nc))
        extreme = float(sps.mannwhitneyu(np.arange(nb), np.arange(nb, nb + nc)).pvalue)
        if extreme >= self.alpha:
            return self._change(metric, b, c, None, _too_few(nb, nc, self.alpha), True)
        p = float(sps.mannwhitneyu(xb, xc, alternative="two-sided").pvalue)
        return self._change(metric, b, c, 1.0 if math.isnan(p) else p)

    def _change(
        self,
        metric: str,
        b: Interval,
        c: Interval,
        p: float | None,
        why: str = "",
        underpowered: bool = False,
    ) -> Change:
        spec = METRIC_SPECS[metric]
        base, current = _value(b.estimate), _value(c.estimate)
        delta = None if base is None or current is None else current - base
        pct = None if delta is None or not base else delta / abs(base)
        verdict: Verdict = "insufficient-data"
        note = why
        if p is not None and delta is not None and base is not None:
            effect = self.effects[metric]
            big = abs(delta) >= effect.absolute and (pct is None or abs(pct) >= effect.relative)
            worse = delta < 0 if spec.higher_is_better else delta > 0
            significant = p < self.alpha
            if significant and big and delta != 0:
                verdict = "regressed" if worse else "improved"
            else:
                verdict = "unchanged"
                if significant:
                    note = "significant but below the minimum effect"
                elif big:
                    note = "large but not significant"
        return Change(
            cell=self.label,
            key=self.key,
            metric=metric,
            unit=spec.unit,
            higher_is_better=spec.higher_is_better,
            baseline=base,
            current=current,
            baseline_low=_value(b.low),
            baseline_high=_value(b.high),
            current_low=_value(c.low),
            current_high=_value(c.high),
            baseline_n=b.n,
            current_n=c.n,
            change=delta,
            change_pct=pct,
            p_value=p,
            verdict=verdict,
            note=note,
            underpowered=underpowered,
        )


def _missing(what: str, nb: int, nc: int) -> str:
    side = (
        "on either side"
        if nb == nc == 0
        else "in the baseline"
        if nb == 0
        else "in the current results"
    )
    return f"no {what} {side}"


def _too_few(nb: int, nc: int, alpha: float) -> str:
    return f"{nb} vs {nc} runs cannot reach p < {alpha:g}"


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _labels(keys: set[CellKey], columns: Sequence[str]) -> tuple[str, ...]:
    return tuple(cell_label(k, columns) for k in sorted(keys, key=cell_sort_key))


def _distinct(frame: pd.DataFrame, column: str) -> list[str]:
    if column not in frame.columns:
        return []
    return sorted({str(v) for v in frame[column].dropna().unique() if str(v)})


def _environment_notes(baseline: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """Version and kernel changes: the first suspects when a whole suite moves."""
    notes = []
    for column in ENVIRONMENT_COLUMNS:
        before, after = _distinct(baseline, column), _distinct(current, column)
        if before and after and before != after:
            notes.append(f"{column}: {', '.join(before)} -> {', '.join(after)}")
    return notes


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value

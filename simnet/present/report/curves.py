"""Set-up time and goodput against every numeric sweep axis (`axis.*` columns), and load
curves (`simnet load` levels)."""

from __future__ import annotations

import re

import pandas as pd
from matplotlib.figure import Figure
from pandas.core.groupby import SeriesGroupBy

from simnet.present.report.figures import PALETTE, attach_canvas
from simnet.present.report.markup import Section, table
from simnet.present.report.rows import finite_values, fmt, label, median
from simnet.quantile import quantile

CURVE_METRICS = (("setup_ms", "set-up (ms)"), ("dc_goodput_mbps", "goodput (Mbit/s)"))
MAX_CURVES = 8  # lines per axis plot; beyond that a plot is unreadable


def _numeric_axis(series: pd.Series) -> pd.Series | None:
    present = series.dropna()
    if present.empty or any(isinstance(v, bool) for v in present):
        return None
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.isna().any() or numbers.nunique() < 2:
        return None
    return numbers


def axis_curves(frame: pd.DataFrame) -> list[Section]:
    """Set-up time and goodput against each numeric sweep axis: median and interquartile band,
    one line per combination of the other axes."""
    axis_columns = [c for c in frame.columns if str(c).startswith("axis.")]
    sections = []
    for column in axis_columns:
        numbers = _numeric_axis(frame[column])
        if numbers is None:
            continue
        rows = frame.loc[numbers.index].assign(_x=numbers)
        rows = rows[rows["succeeded"]]
        others = [c for c in axis_columns if c != column and rows[c].notna().any()] + (
            ["sweep"] if "sweep" in rows.columns else []
        )
        if rows["group"].nunique() > 1:  # variants and stacks never share a curve
            others.insert(0, "group")
        keys = (
            rows[others].apply(lambda r: ", ".join(f"{label(v)}" for v in r), axis=1)
            if others
            else pd.Series("all", index=rows.index)
        )
        groups = list(dict.fromkeys(keys))[:MAX_CURVES]
        metrics = [m for m in CURVE_METRICS if m[0] in rows.columns]
        if rows.empty or not metrics:
            continue
        figure = Figure(figsize=(5.5 * len(metrics), 4), layout="constrained")
        axes = figure.subplots(1, len(metrics), squeeze=False)[0]
        name = column.removeprefix("axis.")
        table_rows = []
        for ax, (metric, title) in zip(axes, metrics, strict=True):
            ax.set_prop_cycle(color=list(PALETTE))  # not the outcome colours of the grid
            for group in groups:
                sub = rows[keys == group]
                stats = _quantiles(sub.groupby("_x")[metric], (0.25, 0.5, 0.75)).dropna()
                if stats.empty:
                    continue
                x = stats.index.to_numpy(dtype=float)
                ax.plot(x, stats[0.5], marker="o", label=group)
                ax.fill_between(x, stats[0.25], stats[0.75], alpha=0.2)
                if metric == metrics[0][0]:
                    for value, q in stats.iterrows():
                        table_rows.append([group, label(value), fmt(q[0.5], " ms", 1)])
            values = numbers.to_numpy(dtype=float)
            if values.min() > 0 and values.max() / values.min() >= 100:
                ax.set_xscale("log")  # sizes and rates are usually swept in decades
            ax.set_xlabel(name)
            ax.set_title(title)
            ax.grid(alpha=0.3)
            if len(groups) > 1:
                ax.legend(fontsize=8, title=", ".join(o.removeprefix("axis.") for o in others))
        figure.suptitle(f"against {name} (median, interquartile band)")
        body = table(["series", name, "median set-up"], table_rows, "axis-curve")
        slug = "axis-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        sections.append(Section(slug, f"Sweep axis {name}", body, attach_canvas(figure)))
    return sections


def load_curves(frame: pd.DataFrame) -> Section | None:
    """`simnet load` rows: set-up p50 and p95 (relayed and direct calls apart) and the successful
    share against the number of calls at once, one line per group (scenario and variant)."""
    if "concurrency" not in frame.columns:
        return None
    rows = frame[frame["concurrency"].notna()]
    if rows.empty:
        return None
    figure = Figure(figsize=(11, 4), layout="constrained")
    setup_ax, share_ax = figure.subplots(1, 2)
    for ax in (setup_ax, share_ax):
        ax.set_prop_cycle(color=list(PALETTE))  # not the outcome colours of the grid
    table_rows = []
    for group, sub in list(rows.groupby("group", sort=False))[:MAX_CURVES]:
        levels = sub.groupby("concurrency")
        share = levels["succeeded"].mean()
        x = share.index.to_numpy(dtype=float)
        share_ax.plot(x, share.to_numpy() * 100, marker="o", label=str(group))
        connected = sub[sub["succeeded"]]
        for path in ("relay", "direct"):
            on_path = connected[connected["path"] == path].groupby("concurrency")["setup_ms"]
            if on_path.size().sum() == 0:
                continue
            quantiles = _quantiles(on_path, (0.5, 0.95))
            px = quantiles.index.to_numpy(dtype=float)
            setup_ax.plot(px, quantiles[0.5], marker="o", label=f"{group} {path} p50")
            setup_ax.plot(px, quantiles[0.95], linestyle="--", label=f"{group} {path} p95")
        for level, calls in levels:
            ok = calls[calls["succeeded"]]["setup_ms"]
            table_rows.append(
                [
                    str(group),
                    label(level),
                    str(len(calls)),
                    f"{calls['succeeded'].mean() * 100:.0f} %",
                    fmt(median(ok), " ms"),
                    fmt(quantile(finite_values(ok), 0.95), " ms"),
                    f"{(calls['outcome'] == 'relay').mean() * 100:.0f} %",
                ]
            )
    for ax, title in ((setup_ax, "set-up (ms)"), (share_ax, "succeeded (%)")):
        ax.set_xlabel("calls at once")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    share_ax.set_ylim(0, 105)
    body = table(
        ["series", "calls at once", "calls", "succeeded", "set-up p50", "p95", "relayed"],
        table_rows,
        "load-curve",
    )
    return Section("load", "Load: calls at once", body, attach_canvas(figure))


def _quantiles(groups: SeriesGroupBy, qs: tuple[float, ...]) -> pd.DataFrame:
    """Each group's quantiles `qs` (columns) by `simnet.quantile`, its missing values left out."""
    return pd.DataFrame(
        {q: groups.agg(lambda s, q=q: quantile(finite_values(s), q)) for q in qs}
    ).astype(float)

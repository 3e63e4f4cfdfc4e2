"""The distribution of each call phase's time, and TURN versus direct (set-up, goodput and RTT
by path and relay transport)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simnet.present.report.figures import PATH_COLORS, attach_canvas, new_figure
from simnet.present.report.markup import Section, table
from simnet.present.report.rows import finite_values, fmt, median, phase_columns


def phases(frame: pd.DataFrame) -> Section | None:
    """When each phase of a successful call ends, from the offer: where set-up time goes.

    Split by path, because direct and relayed calls have different shapes (a relayed call
    usually waits for a retransmitted check) and one box over both would describe neither.
    """
    ok = frame[frame["succeeded"]]
    columns = [c for c in phase_columns(frame) if finite_values(ok[c]).size]
    if not columns:
        return None
    ok = ok.assign(outcome=_by_group(ok, ok["outcome"]))
    paths = sorted(set(ok["outcome"]), key=lambda p: (not p.endswith("direct"), p))
    labels = [c.removesuffix("_ms").replace("_", " ", 1) for c in columns]
    width = 0.8 / len(paths)
    figure, ax = new_figure(9, 0.9 + 0.3 * len(columns) * max(1, len(paths) * 0.8))
    for j, path in enumerate(paths):
        data = [finite_values(ok.loc[ok["outcome"] == path, c]) for c in columns]
        positions = [i - 0.4 + width * (j + 0.5) for i in range(len(columns))]
        shown = [(p, d) for p, d in zip(positions, data, strict=True) if d.size]
        if not shown:
            continue
        box = ax.boxplot(
            [d for _, d in shown],
            positions=[p for p, _ in shown],
            widths=width * 0.9,
            orientation="horizontal",
            patch_artist=True,
            manage_ticks=False,
        )
        for patch in box["boxes"]:
            patch.set_facecolor(PATH_COLORS.get(_path_of(path), "#999999"))
        box["boxes"][0].set_label(path)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel("ms after the offerer created its offer")
    ax.set_title("Call phases (successful calls)")
    ax.grid(axis="x", alpha=0.3)
    if len(paths) > 1:
        ax.legend(loc="upper right")
    rows = []
    for label, column in zip(labels, columns, strict=True):
        for path in paths:
            values = finite_values(ok.loc[ok["outcome"] == path, column])
            if values.size:
                rows.append(
                    [
                        label,
                        path,
                        str(values.size),
                        fmt(float(np.median(values)), " ms", 1),
                        fmt(float(np.percentile(values, 90)), " ms", 1),
                    ]
                )
    body = f"<p>{len(ok)} successful calls, by {_split_by(ok)}.</p>" + table(
        ["phase", "path", "n", "median", "p90"], rows, "phases"
    )
    return Section("phases", "Set-up time by phase", body, figure)


GROUP_SEP = " · "


def _by_group(rows: pd.DataFrame, paths: pd.Series) -> pd.Series:
    """`paths` prefixed with each row's group where the rows hold several groups (variants must
    not share a box), unchanged otherwise."""
    if rows["group"].nunique() <= 1:
        return paths
    return rows["group"] + GROUP_SEP + paths


def _path_of(label: str) -> str:
    """The path part of a `_by_group` label: `direct`, `relay` (from `relay/udp`), ..."""
    return label.rsplit(GROUP_SEP, 1)[-1].split("/")[0]


def _split_by(rows: pd.DataFrame) -> str:
    return "scenario variant and path" if rows["group"].nunique() > 1 else "path"


def _path_label(row: pd.Series) -> str:
    protocol = row.get("relay_protocol")
    if row["outcome"] == "relay" and isinstance(protocol, str) and protocol:
        return f"relay/{protocol}"
    return str(row["outcome"])


def turn_vs_direct(frame: pd.DataFrame) -> Section | None:
    """What relaying costs: the same measurements split by the path the call took."""
    ok = frame[frame["succeeded"]]
    if ok.empty:
        return None
    labels = _by_group(ok, ok.apply(_path_label, axis=1))
    groups = sorted(set(labels), key=lambda g: (_path_of(g) != "direct", g))
    metrics = [
        (m, title)
        for m, title in (
            ("setup_ms", "set-up (ms)"),
            ("dc_goodput_mbps", "goodput (Mbit/s)"),
            ("rtt_ms", "RTT (ms)"),
        )
        if m in ok.columns
    ]
    if not metrics:
        return None
    figure = Figure(figsize=(4 * len(metrics), 4.2), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, (metric, title) in zip(axes, metrics, strict=True):
        data = [finite_values(ok.loc[labels == g, metric]) for g in groups]
        shown = [(g, d) for g, d in zip(groups, data, strict=True) if d.size]
        if shown:
            box = ax.boxplot([d for _, d in shown], patch_artist=True)
            ax.set_xticks(range(1, len(shown) + 1), [g for g, _ in shown])
            for patch, (group, _) in zip(box["boxes"], shown, strict=True):
                patch.set_facecolor(PATH_COLORS.get(_path_of(group), "#999999"))
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    figure.suptitle("TURN vs direct (successful calls)")
    rows = []
    for group in groups:
        sub = ok[labels == group]
        rows.append([group, str(len(sub))] + [fmt(median(sub[m]), "", 1) for m, _ in metrics])
    note = (
        "" if len(groups) > 1 else f"<p>Every successful call here took one path: {groups[0]}.</p>"
    )
    body = note + table(["path", "n", *(t for _, t in metrics)], rows, "turn-vs-direct")
    return Section("turn-vs-direct", "TURN vs direct", body, attach_canvas(figure))

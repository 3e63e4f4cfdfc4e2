"""TURN versus direct: set-up, goodput and RTT by path and relay transport, each variant apart
(the call phases are drawn in `waterfall`)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from simnet.present.report.figures import attach_canvas, variant_colors
from simnet.present.report.markup import Section, table
from simnet.present.report.rows import finite_values, fmt, median, series_labels


def _path_label(row: pd.Series) -> str:
    protocol = row.get("relay_protocol")
    if row["outcome"] == "relay" and isinstance(protocol, str) and protocol:
        return f"relay/{protocol}"
    return str(row["outcome"])


def turn_vs_direct(frame: pd.DataFrame) -> Section | None:
    """What relaying costs: the same measurements split by the path the call took, each variant
    (scenario, overrides, stacks) in its own colour; relayed boxes hatched."""
    ok = frame[frame["succeeded"]]
    if ok.empty:
        return None
    series = series_labels(frame)
    colors = variant_colors(series)
    ok = ok.assign(_series=series[ok.index], _path=ok.apply(_path_label, axis=1))
    groups = sorted(
        set(zip(ok["_series"], ok["_path"], strict=True)),
        key=lambda g: (g[0], g[1].split("/")[0] != "direct", g[1]),
    )
    metrics = [
        (m, title)
        for m, title in (
            ("setup_ms", "set-up (ms)"),
            ("dc_goodput_mbps", "goodput (Mbit/s)"),
            ("rtt_ms", "RTT (ms)"),
        )
        if m in ok.columns and finite_values(ok[m]).size
    ]
    if not metrics:
        return None
    several = len({s for s, _ in groups}) > 1
    figure = Figure(figsize=(max(4 * len(metrics), 1.1 * len(groups) * len(metrics)), 4.4),
                    layout="constrained")  # fmt: skip
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, (metric, title) in zip(axes, metrics, strict=True):
        data = [
            finite_values(ok.loc[(ok["_series"] == s) & (ok["_path"] == p), metric])
            for s, p in groups
        ]
        shown = [(g, d) for g, d in zip(groups, data, strict=True) if d.size]
        if shown:
            box = ax.boxplot([d for _, d in shown], patch_artist=True)
            # the path only under each box: the variant is its colour (legend below)
            names = [p for (_, p), _ in shown]
            ax.set_xticks(range(1, len(shown) + 1), names, rotation=30 if several else 0,
                          ha="right" if several else "center", fontsize=8)  # fmt: skip
            for patch, ((s, p), _) in zip(box["boxes"], shown, strict=True):
                patch.set_facecolor(colors[s])
                if not p.startswith("direct"):
                    patch.set_hatch("///")
                    patch.set_edgecolor("#222")
            for line in box["medians"]:
                line.set_color("#111")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles = [
        Patch(facecolor=colors[s], label=_wrap(s, 60)) for s in dict.fromkeys(s for s, _ in groups)
    ]
    if any(not p.startswith("direct") for _, p in groups):
        handles.append(Patch(facecolor="white", edgecolor="#222", hatch="///", label="relayed"))
    figure.legend(handles=handles, loc="outside lower center", fontsize=8,
                  ncols=min(3, len(handles)), frameon=False)  # fmt: skip
    figure.suptitle("TURN vs direct (successful calls)")
    rows = []
    for s, p in groups:
        sub = ok[(ok["_series"] == s) & (ok["_path"] == p)]
        rows.append([s, p, str(len(sub))] + [fmt(median(sub[m]), "", 1) for m, _ in metrics])
    paths = {p for _, p in groups}
    note = (
        ""
        if len(paths) > 1
        else f"<p>Every successful call here took one path: {next(iter(paths))}.</p>"
    )
    body = note + table(["variant", "path", "n", *(t for _, t in metrics)], rows, "turn-vs-direct")
    return Section("turn-vs-direct", "TURN vs direct", body, attach_canvas(figure))


def _wrap(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"

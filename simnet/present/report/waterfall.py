"""Where set-up time goes, as a picture: one waterfall per variant, both sides of the call on
the one clock.

A variant is everything that makes calls comparable: the scenario and its overrides, the
WebRTC stacks of the two sides, and the cell of a matrix, sweep or population (NAT presets,
`axis.*` values, network classes, calls at once). Calls of different variants measured
different things, so each variant gets its own waterfall, never a pooled one.

Each waterfall has one bar per milestone a side reached (`offerer_ice_connected_ms`, ...): from
the side's previous milestone to this one, at the median over the variant's successful calls,
with a whisker over the interquartile range of the milestone's time. The offerer's bars are
solid, the answerer's lighter and hatched, in the variant's colour (the colour the variant has
in every plot of the page). Both peers stamp their milestones on one monotonic clock, the
offer's creation being zero, so a bar of the answerer lines up with the offerer's bar it waited
for. The answerer records no "offer received": its first bar starts when the offerer sent the
offer, so it holds the signaling transit as well as its own gathering.

A variant whose calls took both paths gets one panel per path: a relayed call usually waits for
a retransmitted check, and one median over both would describe neither. The numbers behind the
bars stay on the page, in a table folded under the pictures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from simnet.callspec import ROW_MILESTONES
from simnet.present.report.figures import attach_canvas, lighter, variant_colors
from simnet.present.report.markup import Gallery, Section, table
from simnet.present.report.rows import fmt, label, missing, phase_columns, series_labels
from simnet.quantile import quantile

MAX_WATERFALLS = 12  # pictures on one page; the table below them holds every variant
SIDES = ("offerer", "answerer")
# Columns that make a row's cell within its scenario (matrix, population, load).
CELL_PAIRS = (("nat_a", "nat_b", "NAT"), ("offerer_class", "answerer_class", "classes"))
SHARED_AXIS_SPREAD = 4.0  # one time axis for all pictures while their ends differ by less


def _cells(frame: pd.DataFrame) -> pd.Series:
    """Each row's cell (`NAT full-cone -> symmetric, data_bytes=0`), "" where it has none."""
    parts: list[pd.Series] = []
    for a, b, name in CELL_PAIRS:
        if a in frame.columns and b in frame.columns:
            parts.append(
                pd.Series(
                    [
                        "" if missing(x) or missing(y) else f"{name} {label(x)} -> {label(y)}"
                        for x, y in zip(frame[a], frame[b], strict=True)
                    ],
                    index=frame.index,
                )
            )
    for column in sorted(c for c in frame.columns if str(c).startswith("axis.")):
        name = str(column).removeprefix("axis.").rsplit(".", 1)[-1]
        parts.append(frame[column].map(lambda v, n=name: "" if missing(v) else f"{n}={label(v)}"))
    if "concurrency" in frame.columns:
        parts.append(
            frame["concurrency"].map(lambda v: "" if missing(v) else f"{label(v)} at once")
        )
    if not parts:
        return pd.Series("", index=frame.index)
    joined = pd.concat(parts, axis=1).apply(lambda r: ", ".join(p for p in r if p), axis=1)
    return joined.astype(str)


@dataclass(frozen=True)
class Bar:
    """One milestone of one side over a variant's calls: the bar from the side's previous
    milestone (`start`) to this one's median, and the interquartile range of its time."""

    side: str
    phase: str
    start: float
    median: float
    low: float
    high: float
    calls: int

    @property
    def name(self) -> str:
        return f"{self.side} {self.phase.replace('_', ' ')}"


def _milestones(rows: pd.DataFrame) -> list[Bar]:
    """The bars of the milestones these rows reached, in the order they happened (median time;
    call order between equal times)."""
    present = set(phase_columns(rows))
    bars: list[Bar] = []
    for side in SIDES:
        # the answerer's first bar starts when the offer left the offerer (see the module)
        previous = 0.0 if side == "offerer" else _median_of(rows, "offerer_offer_sent_ms", present)
        for phase in ROW_MILESTONES:
            column = f"{side}_{phase}_ms"
            values = _values(rows, column) if column in present else []
            middle = quantile(values, 0.5)
            low, high = quantile(values, 0.25), quantile(values, 0.75)
            if middle is None or low is None or high is None:
                continue
            start = min(previous if previous is not None else 0.0, middle)
            bars.append(Bar(side, phase, start, middle, low, high, len(values)))
            previous = middle
    order = {(side, phase): i for i, (phase, side) in enumerate(
        (p, s) for p in ROW_MILESTONES for s in SIDES)}  # fmt: skip
    return sorted(bars, key=lambda b: (b.median, order[(b.side, b.phase)]))


def _values(rows: pd.DataFrame, column: str) -> list[float]:
    numbers = pd.to_numeric(rows[column], errors="coerce")
    return [float(v) for v in numbers[numbers.notna()]]


def _median_of(rows: pd.DataFrame, column: str, present: set[str]) -> float | None:
    return quantile(_values(rows, column), 0.5) if column in present else None


def _draw(ax: Axes, bars: list[Bar], color: str) -> None:
    for y, bar in enumerate(bars):
        solid = bar.side == "offerer"
        ax.barh(
            y,
            max(bar.median - bar.start, 0.0),
            left=bar.start,
            height=0.7,
            color=color if solid else lighter(color),
            edgecolor=color,
            hatch=None if solid else "///",
            linewidth=0.8,
        )
        ax.errorbar(
            bar.median, y, xerr=[[bar.median - bar.low], [bar.high - bar.median]], fmt="none",
            ecolor="#222", elinewidth=1, capsize=2.5,
        )  # fmt: skip
        ax.annotate(
            f"{bar.median:.0f}", (max(bar.high, bar.median), y), xytext=(4, 0),
            textcoords="offset points", va="center", fontsize=7, color="#333",
        )  # fmt: skip
    ax.set_yticks(range(len(bars)), [bar.name for bar in bars])
    ax.tick_params(axis="y", labelsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_ylim(len(bars) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)


@dataclass(frozen=True)
class Panel:
    """The calls of one variant that took one path, and their bars."""

    path: str
    calls: int
    bars: list[Bar]


def _figure(title: str, panels: list[Panel], color: str, x_max: float | None) -> Figure:
    heights = [0.6 + 0.19 * len(panel.bars) for panel in panels]
    figure = Figure(figsize=(5.6, 0.5 + sum(heights)), layout="constrained")
    axes = figure.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        _draw(ax, panel.bars, color)
        ax.set_title(f"{panel.path}: {panel.calls} successful call(s)", fontsize=9, loc="left")
        if x_max is not None:
            ax.set_xlim(0, x_max)
        else:
            ax.set_xlim(left=0)
    axes[-1].set_xlabel("ms after the offerer created its offer", fontsize=8)
    figure.suptitle(_wrap(title, 70), fontsize=10)
    return attach_canvas(figure)


def _wrap(text: str, width: int) -> str:
    """`text` broken at spaces into lines of at most about `width` characters."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def phases(frame: pd.DataFrame) -> Section | None:
    """The waterfalls of the successful calls, one per variant, and their numbers in a table."""
    ok = frame[frame["succeeded"]]
    columns = [
        c for c in phase_columns(frame) if pd.to_numeric(ok[c], errors="coerce").notna().any()
    ]
    if not columns:
        return None
    series = series_labels(frame)
    colors = variant_colors(series)
    ok = ok.assign(_series=series[ok.index], _cell=_cells(ok))
    variants = {
        (s, c): _panels(ok[(ok["_series"] == s) & (ok["_cell"] == c)])
        for s, c in dict.fromkeys(zip(ok["_series"], ok["_cell"], strict=True))
    }
    shown = list(variants)[:MAX_WATERFALLS]
    ends = [max(b.high for b in p.bars) for v in shown for p in variants[v] if p.bars]
    x_max = (
        max(ends) * 1.12 if ends and max(ends) <= SHARED_AXIS_SPREAD * max(min(ends), 1) else None
    )
    gallery = []
    numbers = []
    for k, ((s, c), panels) in enumerate(variants.items()):
        title = f"{s} | {c}" if c else s
        if k < MAX_WATERFALLS:
            slug = f"phases-{k + 1:02d}-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
            gallery.append(
                Gallery(slug[:50].rstrip("-"), title, _figure(title, panels, colors[s], x_max))
            )
        for panel in panels:
            for bar in panel.bars:
                numbers.append(
                    [title, panel.path, bar.name, str(bar.calls), fmt(bar.median, " ms", 1),
                     f"{fmt(bar.low, '', 1)} - {fmt(bar.high, ' ms', 1)}"]
                )  # fmt: skip
    more = len(variants) - len(shown)
    note = (
        f"<p>{len(ok)} successful calls in {len(variants)} variant(s). Each bar: from the side's "
        "previous milestone to this one, median over the calls; whisker: interquartile range; "
        "offerer solid, answerer hatched, both on the offerer's clock (0 = offer created)."
        + (" One time axis for all pictures." if x_max is not None else "")
        + (f" {more} more variant(s) only in the table." if more > 0 else "")
        + "</p>"
    )
    after = (
        "<details><summary>The numbers behind the pictures</summary>"
        + table(["variant", "path", "milestone", "n", "median", "interquartile"], numbers, "phases")
        + "</details>"
    )
    return Section("phases", "Set-up time by phase", note, gallery=gallery, after=after)


def _panels(rows: pd.DataFrame) -> list[Panel]:
    """One panel per path these calls took, direct first."""
    paths = sorted(set(rows["outcome"]), key=lambda p: (p != "direct", p))
    panels = []
    for path in paths:
        on_path = rows[rows["outcome"] == path]
        panels.append(Panel(path, len(on_path), _milestones(on_path)))
    return panels

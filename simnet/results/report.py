"""`simnet report`: one self-contained HTML page from result directories.

Why a page and not a notebook: a benchmark's answer has to travel (attached to an issue, a chat,
a release note) and still open years later without the data, simnet or a network connection. So
every plot is a PNG embedded as base64 and all styling is inline; the PNGs are also written next to
the page, for slides. Plots are drawn on matplotlib `Figure`s with the Agg canvas directly: no
pyplot, no global backend switch, so calling `report` from a notebook or a GUI program does not
change how that program draws.

What the page shows, each section only where the rows carry the data for it:

- an overview per scenario variant (runs, outcomes, median set-up, goodput, RTT, errors);
- the NAT matrix as a coloured grid (direct / relay / failed, median set-up in each cell), from
  `nat_a`/`nat_b` columns (`simnet matrix`) or from two `axis.nats.<name>.preset` sweep axes;
- the distribution of each call phase's time (`offerer_ice_connected_ms`, ...);
- TURN versus direct: set-up, goodput and RTT by path (and relay transport);
- set-up time and goodput against every numeric sweep axis (`axis.*` columns).

A **variant** is what was laid over a scenario file: the row's `overrides` (the `--set`s of
`simnet run`, a sweep point's settings). Rows of one scenario with different overrides measured
different networks, so they are never pooled: each group is labelled by scenario and variant,
e.g. `direct-lan [hosts.alice.link.delay_ms=100]`. Rows written before `overrides` existed fall
back to `scenario_hash` (the scenario as run), labelled `#<hash>` where a scenario has several.
The phase and TURN-versus-direct sections split by group too where the rows hold more than one.

Latency and throughput are taken from connected calls only: a failed call's partial timings are
not comparable with a finished call's, and the outcome counts account for the failures.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simnet.callspec import ROW_MILESTONES
from simnet.errors import SimnetError
from simnet.peerkinds import DEFAULT_KIND

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Outcome colours: the grid's HTML cells and its PNG use the same ones (tests look for them).
COLORS = {
    "direct": "#2e9e44",  # green: hole punching worked
    "relay": "#f2a900",  # amber: connected through TURN
    "failed": "#d62f2f",  # red
    "direct/relay": "#9bc53d",  # light green: both paths were taken across repetitions
    "partial": "#ef7d2d",  # orange: some repetitions failed
    "none": "#e6e6e6",  # grey: no run for this cell
}
PATH_COLORS = {"direct": "#2e9e44", "relay": "#f2a900"}
PRESET_ORDER = ("open", "full-cone", "restricted-cone", "port-restricted-cone", "symmetric")
MATRIX_AXIS = re.compile(r"^axis\.nats\.([^.]+)\.preset$")
NUMERIC = ("setup_ms", "ice_connect_ms", "dc_goodput_mbps", "rtt_ms", "wall_ms")
DASH = "-"
CURVE_METRICS = (("setup_ms", "set-up (ms)"), ("dc_goodput_mbps", "goodput (Mbit/s)"))
MAX_CURVES = 8  # lines per axis plot; beyond that a plot is unreadable


@dataclass
class Section:
    """One part of the page: a heading, a few lines of HTML and optionally one plot."""

    slug: str
    title: str
    body: str
    figure: Figure | None = None
    png: bytes = b""


# --- data -------------------------------------------------------------------------------------


def _prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Uniform types whatever wrote the rows: `connected` bool, measurements float, `outcome`."""
    frame = frame.copy()
    connected = frame["connected"] if "connected" in frame.columns else False
    frame["connected"] = pd.Series(connected, index=frame.index).fillna(False).astype(bool)
    for column in (*NUMERIC, *_phase_columns(frame)):
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    path = frame["path"] if "path" in frame.columns else pd.Series(None, index=frame.index)
    frame["outcome"] = [
        str(p) if c and isinstance(p, str) else ("connected" if c else "failed")
        for c, p in zip(frame["connected"], path, strict=True)
    ]
    if "scenario" not in frame.columns:
        frame["scenario"] = "?"
    frame["group"] = group_labels(frame)
    frame["stack"] = stack_labels(frame)
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
    """Each row's group: its scenario, and its variant where it has one."""
    scenario = frame["scenario"].map(str)
    stored = frame["overrides"] if "overrides" in frame.columns else [None] * len(frame)
    variants = pd.Series(
        [None if (o := _overrides(v)) is None else variant_label(o) for v in stored],
        index=frame.index,
        dtype=object,
    )
    if "scenario_hash" in frame.columns:
        # older rows: only the scenario's hash tells variants apart, where a scenario has several
        hashes = frame["scenario_hash"].map(lambda h: None if _missing(h) else str(h))
        several = hashes.groupby(scenario).transform(lambda h: h.nunique() > 1)
        unknown = variants.isna() & several
        variants = variants.where(~unknown, "#" + hashes.str[:8])
    variants = variants.fillna("")
    return pd.Series(
        [f"{s} {v}" if v else s for s, v in zip(scenario, variants, strict=True)],
        index=frame.index,
    )


def _phase_columns(frame: pd.DataFrame) -> list[str]:
    """Phase columns present, in call order (offerer and answerer side by side)."""
    return [
        f"{side}_{phase}_ms"
        for phase in ROW_MILESTONES
        for side in ("offerer", "answerer")
        if f"{side}_{phase}_ms" in frame.columns
    ]


def _values(series: pd.Series) -> np.ndarray[Any, np.dtype[np.float64]]:
    array: np.ndarray[Any, np.dtype[np.float64]] = pd.to_numeric(series, errors="coerce").to_numpy(
        dtype=float
    )
    finite: np.ndarray[Any, np.dtype[np.float64]] = array[np.isfinite(array)]
    return finite


def _median(series: pd.Series) -> float | None:
    values = _values(series)
    return float(np.median(values)) if values.size else None


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    return DASH if value is None else f"{value:.{digits}f}{unit}"


def _label(value: Any) -> str:
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


def _ordered(values: Sequence[Any]) -> list[str]:
    labels = list(dict.fromkeys(_label(v) for v in values if not _missing(v)))
    known = [p for p in PRESET_ORDER if p in labels]
    return known + sorted(v for v in labels if v not in known)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# --- sections -----------------------------------------------------------------------------------


def _group_columns(frame: pd.DataFrame) -> list[str]:
    return ["group"] + (["sweep"] if "sweep" in frame.columns else [])


def overview(frame: pd.DataFrame) -> Section:
    """Runs and outcomes per scenario variant (and sweep): the first thing anyone asks."""
    by = _group_columns(frame)
    rows = []
    for key, group in frame.groupby(by, dropna=False, sort=True):
        keys = key if isinstance(key, tuple) else (key,)
        ok = group[group["connected"]]
        counts = group["outcome"].value_counts()
        errors = group.loc[~group["connected"], "error"] if "error" in group.columns else []
        error_counts = pd.Series(list(errors), dtype=object).value_counts()
        rows.append(
            [
                *(_label(k) if not _missing(k) else DASH for k in keys),
                str(len(group)),
                ", ".join(f"{o} {n}" for o, n in counts.items()),
                _fmt(_median(ok.get("setup_ms", pd.Series(dtype=float))), " ms"),
                _fmt(_median(ok.get("dc_goodput_mbps", pd.Series(dtype=float))), "", 1),
                _fmt(_median(ok.get("rtt_ms", pd.Series(dtype=float))), " ms", 1),
                ", ".join(f"{e} {n}" for e, n in error_counts.items()) or DASH,
            ]
        )
    names = ["scenario" if c == "group" else c for c in by]
    header = [*names, "runs", "outcomes", "median set-up", "goodput Mbit/s", "RTT", "errors"]
    if "sweep_jobs" in frame.columns:
        # runs made in parallel share the CPU: their timings are comparable only at equal jobs
        header.append("parallel jobs")
        for row, (_, group) in zip(rows, frame.groupby(by, dropna=False, sort=True), strict=True):
            jobs = sorted({int(j) for j in group["sweep_jobs"].dropna()})
            row.append(", ".join(map(str, jobs)) or DASH)
    return Section("overview", "Overview", _table(header, rows, "overview"))


def _matrix_axes(frame: pd.DataFrame) -> tuple[str, str, str, str] | None:
    """(column A, column B, label A, label B) of a NAT matrix in these rows, if there is one."""
    if {"nat_a", "nat_b"} <= set(frame.columns) and frame["nat_a"].notna().any():
        return "nat_a", "nat_b", "A (offerer)", "B (answerer)"
    axes = [(c, m.group(1)) for c in frame.columns if (m := MATRIX_AXIS.match(str(c)))]
    if len(axes) >= 2:
        (a, name_a), (b, name_b) = axes[:2]
        return a, b, f"{name_a} (NAT preset)", f"{name_b} (NAT preset)"
    return None


def _cell_outcome(outcomes: set[str]) -> str:
    if not outcomes:
        return "none"
    if outcomes == {"failed"}:
        return "failed"
    if "failed" in outcomes:
        return "partial"
    if outcomes == {"direct"}:
        return "direct"
    if outcomes <= {"relay"}:
        return "relay"
    return "direct/relay"


def nat_matrices(frame: pd.DataFrame) -> list[Section]:
    """One grid per scenario that holds matrix rows: rows are side A, columns side B."""
    axes = _matrix_axes(frame)
    if axes is None:
        return []
    col_a, col_b, label_a, label_b = axes
    rows = frame[frame[col_a].notna() & frame[col_b].notna()]
    sections = []
    several = rows["stack"].nunique() > 1
    for (scenario, stack), group in rows.groupby(["scenario", "stack"], sort=True):
        title = f"{scenario}, {stack}" if several else str(scenario)
        a_values, b_values = _ordered(list(group[col_a])), _ordered(list(group[col_b]))
        grid: list[list[tuple[str, str, int]]] = []  # (outcome class, cell text, runs)
        for a in a_values:
            line = []
            for b in b_values:
                cell = group[(group[col_a].map(_label) == a) & (group[col_b].map(_label) == b)]
                kind = _cell_outcome(set(cell["outcome"]))
                setup = _median(cell.loc[cell["connected"], "setup_ms"])
                text = "" if kind == "none" else kind
                if setup is not None:
                    text += f"\n{setup:.0f} ms"
                line.append((kind, text, len(cell)))
            grid.append(line)
        head = "".join(f"<th>{html.escape(b)}</th>" for b in b_values)
        body = ""
        for a, line in zip(a_values, grid, strict=True):
            cells = "".join(
                f'<td class="cell-{kind.replace("/", "-")}" style="background:{COLORS[kind]}" '
                f'title="{runs} run(s)">{html.escape(text).replace(chr(10), "<br>")}</td>'
                for kind, text, runs in line
            )
            body += f"<tr><th>{html.escape(a)}</th>{cells}</tr>"
        corner = html.escape(f"{label_a} \\ {label_b}")
        table = (
            f'<table class="nat-matrix"><thead><tr><th>{corner}</th>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
        legend = " ".join(
            f'<span class="swatch" style="background:{COLORS[k]}"></span>{html.escape(k)}'
            for k in ("direct", "relay", "failed", "direct/relay", "partial")
        )
        text = (
            f"<p>Each cell: how the calls connected and their median set-up time (offer created "
            f"to data channel open). {len(group)} runs.</p>{table}<p>{legend}</p>"
        )
        figure = _matrix_figure(grid, a_values, b_values, label_a, label_b, title)
        slug = "matrix-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        sections.append(Section(slug, f"NAT matrix: {title}", text, figure))
    if several:
        sections.append(_stacks_side_by_side(rows, col_a, col_b, label_a, label_b))
    return sections


def _stacks_side_by_side(
    rows: pd.DataFrame, col_a: str, col_b: str, label_a: str, label_b: str
) -> Section:
    """Per matrix cell, what each stack did: path and median set-up, cells where the stacks
    took different paths marked, so a difference of behaviour is one look away."""
    stacks = sorted(rows["stack"].unique(), key=lambda s: (s != DEFAULT_KIND, s))
    header = [label_a, label_b, *(f"{s}: path, median set-up" for s in stacks), "paths differ"]
    lines = []
    for a in _ordered(list(rows[col_a])):
        for b in _ordered(list(rows[col_b])):
            cell = rows[(rows[col_a].map(_label) == a) & (rows[col_b].map(_label) == b)]
            paths = []
            line = [a, b]
            for stack in stacks:
                runs = cell[cell["stack"] == stack]
                kind = _cell_outcome(set(runs["outcome"]))
                setup = _median(runs.loc[runs["connected"], "setup_ms"])
                line.append(DASH if kind == "none" else f"{kind}, {_fmt(setup, ' ms')}")
                if kind != "none":
                    paths.append(kind)
            line.append("yes" if len(set(paths)) > 1 else "")
            lines.append(line)
    text = (
        "<p>The same networks called with each WebRTC stack (offerer -> answerer)."
        " Where the paths differ, the stacks' ICE implementations chose differently on the same"
        " network (e.g. a relayed pair nominated although hole punching works).</p>"
        + _table(header, lines, "stacks")
    )
    return Section("matrix-stacks", "NAT matrix by WebRTC stack", text)


def _rgb(color: str) -> tuple[float, float, float]:
    value = int(color.lstrip("#"), 16)
    return ((value >> 16) / 255, ((value >> 8) & 255) / 255, (value & 255) / 255)


def _matrix_figure(
    grid: list[list[tuple[str, str, int]]],
    a_values: list[str],
    b_values: list[str],
    label_a: str,
    label_b: str,
    title: str,
) -> Figure:
    image = np.array([[_rgb(COLORS[kind]) for kind, _, _ in line] for line in grid])
    figure, ax = _figure(1.6 + 1.5 * len(b_values), 1.4 + 1.0 * len(a_values))
    ax.imshow(image, aspect="auto", interpolation="nearest")
    for i, line in enumerate(grid):
        for j, (_, text, _) in enumerate(line):
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color="black")
    ax.set_xticks(range(len(b_values)), b_values, rotation=20, ha="right")
    ax.set_yticks(range(len(a_values)), a_values)
    ax.set_xlabel(label_b)
    ax.set_ylabel(label_a)
    ax.set_xticks(np.arange(-0.5, len(b_values)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(a_values)), minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    ax.set_title(f"{title}: outcome and median set-up")
    return figure


def phases(frame: pd.DataFrame) -> Section | None:
    """When each phase of a connected call ends, from the offer: where set-up time goes.

    Split by path, because direct and relayed calls have different shapes (a relayed call
    usually waits for a retransmitted check) and one box over both would describe neither.
    """
    ok = frame[frame["connected"]]
    columns = [c for c in _phase_columns(frame) if _values(ok[c]).size]
    if not columns:
        return None
    ok = ok.assign(outcome=_by_group(ok, ok["outcome"]))
    paths = sorted(set(ok["outcome"]), key=lambda p: (not p.endswith("direct"), p))
    labels = [c.removesuffix("_ms").replace("_", " ", 1) for c in columns]
    width = 0.8 / len(paths)
    figure, ax = _figure(9, 0.9 + 0.3 * len(columns) * max(1, len(paths) * 0.8))
    for j, path in enumerate(paths):
        data = [_values(ok.loc[ok["outcome"] == path, c]) for c in columns]
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
    ax.set_title("Call phases (connected calls)")
    ax.grid(axis="x", alpha=0.3)
    if len(paths) > 1:
        ax.legend(loc="upper right")
    rows = []
    for label, column in zip(labels, columns, strict=True):
        for path in paths:
            values = _values(ok.loc[ok["outcome"] == path, column])
            if values.size:
                rows.append(
                    [
                        label,
                        path,
                        str(values.size),
                        _fmt(float(np.median(values)), " ms", 1),
                        _fmt(float(np.percentile(values, 90)), " ms", 1),
                    ]
                )
    body = f"<p>{len(ok)} connected calls, by {_split_by(ok)}.</p>" + _table(
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
    ok = frame[frame["connected"]]
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
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4 * len(metrics), 4.2), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, (metric, title) in zip(axes, metrics, strict=True):
        data = [_values(ok.loc[labels == g, metric]) for g in groups]
        shown = [(g, d) for g, d in zip(groups, data, strict=True) if d.size]
        if shown:
            box = ax.boxplot([d for _, d in shown], patch_artist=True)
            ax.set_xticks(range(1, len(shown) + 1), [g for g, _ in shown])
            for patch, (group, _) in zip(box["boxes"], shown, strict=True):
                patch.set_facecolor(PATH_COLORS.get(_path_of(group), "#999999"))
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    figure.suptitle("TURN vs direct (connected calls)")
    rows = []
    for group in groups:
        sub = ok[labels == group]
        rows.append([group, str(len(sub))] + [_fmt(_median(sub[m]), "", 1) for m, _ in metrics])
    note = (
        "" if len(groups) > 1 else f"<p>Every connected call here took one path: {groups[0]}.</p>"
    )
    body = note + _table(["path", "n", *(t for _, t in metrics)], rows, "turn-vs-direct")
    return Section("turn-vs-direct", "TURN vs direct", body, _attach_canvas(figure))


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
        rows = rows[rows["connected"]]
        others = [c for c in axis_columns if c != column and rows[c].notna().any()] + (
            ["sweep"] if "sweep" in rows.columns else []
        )
        keys = (
            rows[others].apply(lambda r: ", ".join(f"{_label(v)}" for v in r), axis=1)
            if others
            else pd.Series("all", index=rows.index)
        )
        groups = list(dict.fromkeys(keys))[:MAX_CURVES]
        metrics = [m for m in CURVE_METRICS if m[0] in rows.columns]
        if rows.empty or not metrics:
            continue
        from matplotlib.figure import Figure

        figure = Figure(figsize=(5.5 * len(metrics), 4), layout="constrained")
        axes = figure.subplots(1, len(metrics), squeeze=False)[0]
        name = column.removeprefix("axis.")
        table_rows = []
        for ax, (metric, title) in zip(axes, metrics, strict=True):
            for group in groups:
                sub = rows[keys == group]
                stats = sub.groupby("_x")[metric].quantile([0.25, 0.5, 0.75]).unstack()
                stats = stats.dropna()
                if stats.empty:
                    continue
                x = stats.index.to_numpy(dtype=float)
                ax.plot(x, stats[0.5], marker="o", label=group)
                ax.fill_between(x, stats[0.25], stats[0.75], alpha=0.2)
                if metric == metrics[0][0]:
                    for value, q in stats.iterrows():
                        table_rows.append([group, _label(value), _fmt(q[0.5], " ms", 1)])
            values = numbers.to_numpy(dtype=float)
            if values.min() > 0 and values.max() / values.min() >= 100:
                ax.set_xscale("log")  # sizes and rates are usually swept in decades
            ax.set_xlabel(name)
            ax.set_title(title)
            ax.grid(alpha=0.3)
            if len(groups) > 1:
                ax.legend(fontsize=8, title=", ".join(o.removeprefix("axis.") for o in others))
        figure.suptitle(f"against {name} (median, interquartile band)")
        body = _table(["series", name, "median set-up"], table_rows, "axis-curve")
        slug = "axis-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        sections.append(Section(slug, f"Sweep axis {name}", body, _attach_canvas(figure)))
    return sections


def load_curves(frame: pd.DataFrame) -> Section | None:
    """`simnet load` rows: set-up p50 and p95 (relayed and direct calls apart) and the connected
    share against the number of calls at once, one line per group (scenario and variant)."""
    if "concurrency" not in frame.columns:
        return None
    rows = frame[frame["concurrency"].notna()]
    if rows.empty:
        return None
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4), layout="constrained")
    setup_ax, share_ax = figure.subplots(1, 2)
    table_rows = []
    for group, sub in list(rows.groupby(group_labels(rows), sort=False))[:MAX_CURVES]:
        levels = sub.groupby("concurrency")
        share = levels["connected"].mean()
        x = share.index.to_numpy(dtype=float)
        share_ax.plot(x, share.to_numpy() * 100, marker="o", label=str(group))
        connected = sub[sub["connected"]]
        for path in ("relay", "direct"):
            on_path = connected[connected["path"] == path].groupby("concurrency")["setup_ms"]
            if on_path.size().sum() == 0:
                continue
            quantiles = on_path.quantile([0.5, 0.95]).unstack()
            px = quantiles.index.to_numpy(dtype=float)
            setup_ax.plot(px, quantiles[0.5], marker="o", label=f"{group} {path} p50")
            setup_ax.plot(px, quantiles[0.95], linestyle="--", label=f"{group} {path} p95")
        for level, calls in levels:
            ok = calls[calls["connected"]]["setup_ms"]
            table_rows.append(
                [
                    str(group),
                    _label(level),
                    str(len(calls)),
                    f"{calls['connected'].mean() * 100:.0f} %",
                    _fmt(_median(ok), " ms"),
                    _fmt(float(ok.quantile(0.95)) if len(ok) else None, " ms"),
                    f"{(calls['path'] == 'relay').mean() * 100:.0f} %",
                ]
            )
    for ax, title in ((setup_ax, "set-up (ms)"), (share_ax, "connected (%)")):
        ax.set_xlabel("calls at once")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    share_ax.set_ylim(0, 105)
    body = _table(
        ["series", "calls at once", "calls", "connected", "set-up p50", "p95", "relayed"],
        table_rows,
        "load-curve",
    )
    return Section("load", "Load: calls at once", body, _attach_canvas(figure))


def population(frame: pd.DataFrame) -> Section | None:
    """`simnet population` rows: the fleet's shares with their intervals, each class's part of
    the TURN share, and the sensitivity of that share to each class's share (a tornado plot).
    The class shares are the rows' own class frequencies (the report has no mix file)."""
    if "offerer_class" not in frame.columns:
        return None
    rows = frame[frame["offerer_class"].notna()]
    if rows.empty:
        return None
    from simnet.population.estimate import estimate
    from simnet.population.mix import Mix

    sides = {
        side: [
            {"class": name, "share": count / len(rows)}
            for name, count in rows[f"{side}_class"].value_counts().items()
        ]
        for side in ("offerer", "answerer")
    }
    result = estimate(rows.to_dict("records"), Mix.model_validate({"sides": sides}))
    shares = [
        [outcome, f"{getattr(result, f'{outcome}_share') * 100:.1f} %",
         f"{getattr(result, f'{outcome}_share_ci_low') * 100:.1f} - "
         f"{getattr(result, f'{outcome}_share_ci_high') * 100:.1f} %"]
        for outcome in ("direct", "relay", "failed")
    ]  # fmt: skip
    parts = [
        [side, html.escape(name), f"{part * 100:.1f} %"]
        for side, classes in result.contributions.items()
        for name, part in classes.items()
    ]
    body = (
        f"<p>{result.calls} calls; relay share weighted by the classes' shares: "
        f"{result.model_relay_share * 100:.1f} %</p>"
        + _table(["outcome", "share", "95 % interval (Wilson)"], shares, "population")
        + _table(["side", "class", "part of the TURN share"], parts, "population-classes")
    )
    figure, ax = _figure(7, 0.45 * len(result.sensitivity) + 1.2)
    labels = [f"{s.side}: {s.network_class}" for s in result.sensitivity]
    base = result.model_relay_share * 100
    for i, s in enumerate(result.sensitivity):
        low, high = s.relay_share_minus * 100, s.relay_share_plus * 100
        ax.barh(i, high - base, left=base, color="#f2a900")
        ax.barh(i, low - base, left=base, color="#2e9e44")
    ax.axvline(base, color="#222", linewidth=1)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("fleet's TURN share (%) with the class 10 points more (amber) / less (green)")
    ax.grid(alpha=0.3, axis="x")
    return Section("population", "Population: share of calls through TURN", body, figure)


# --- figures and the page ---------------------------------------------------------------------


def _attach_canvas(figure: Figure) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    return figure


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return _attach_canvas(figure), figure.add_subplot()


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;
max-width:1150px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
thead th{background:#f3f3f3}
table.nat-matrix td{text-align:center;min-width:110px;height:42px;font-weight:600}
.swatch{display:inline-block;width:14px;height:14px;margin:0 4px 0 12px;vertical-align:middle}
img{max-width:100%;display:block;margin:8px 0}
.meta{color:#666;font-size:12px}
"""


def report(results_dirs: Sequence[Path | str], out_html: Path) -> Path:
    """Write the report page for the rows under `results_dirs` to `out_html` (PNGs beside it,
    named `<page stem>-<section>.png`); returns `out_html`."""
    from simnet.results.store import load

    sources = [Path(p) for p in results_dirs]
    if missing := [str(p) for p in sources if not p.exists()]:
        raise SimnetError(f"no such results: {', '.join(missing)}")
    raw = load(*sources)
    if raw.empty:
        raise SimnetError(
            f"no result rows in {', '.join(map(str, sources))}",
            fix="run `simnet run`, `simnet matrix` or a sweep with --out DIR first",
        )
    frame = _prepare(raw)
    sections = [overview(frame), *nat_matrices(frame)]
    sections += [
        s
        for s in (phases(frame), turn_vs_direct(frame), load_curves(frame), population(frame))
        if s
    ]
    sections += axis_curves(frame)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    for section in sections:
        image = ""
        if section.figure is not None:
            section.png = _png(section.figure)
            png_path = out_html.with_name(f"{out_html.stem}-{section.slug}.png")
            png_path.write_bytes(section.png)
            encoded = base64.b64encode(section.png).decode()
            image = (
                f'<img alt="{html.escape(section.title)}" src="data:image/png;base64,{encoded}">'
            )
        parts.append(
            f'<section id="{section.slug}"><h2>{html.escape(section.title)}</h2>'
            f"{section.body}{image}</section>"
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    revisions = sorted(set(raw["git_revision"].dropna())) if "git_revision" in raw else []
    meta = (
        f"{len(frame)} runs from {html.escape(', '.join(map(str, sources)))}; generated {stamp}"
        + (f"; simnet revision {html.escape(', '.join(map(str, revisions)))}" if revisions else "")
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>simnet report</title><style>{STYLE}</style></head><body>"
        f'<h1>simnet report</h1><p class="meta">{meta}</p>{"".join(parts)}</body></html>\n'
    )
    tmp = out_html.with_name(out_html.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out_html)
    return out_html

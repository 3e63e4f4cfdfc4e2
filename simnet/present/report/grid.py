"""The overview table per scenario variant, and the NAT matrix as a coloured grid (from `nat_a`/
`nat_b` columns of `simnet matrix`, or from two `axis.nats.<name>.preset` sweep axes)."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simnet.peerkinds import DEFAULT_KIND
from simnet.present.report.figures import COLORS, new_figure, rgb
from simnet.present.report.markup import Section, table
from simnet.present.report.rows import (
    DASH,
    fmt,
    group_columns,
    group_labels,
    label,
    median,
    missing,
    ordered,
)

MATRIX_AXIS = re.compile(r"^axis\.nats\.([^.]+)\.preset$")


def overview(frame: pd.DataFrame) -> Section:
    """Runs and outcomes per scenario variant (and sweep): the first thing anyone asks."""
    by = group_columns(frame)
    rows = []
    for key, group in frame.groupby(by, dropna=False, sort=True):
        keys = key if isinstance(key, tuple) else (key,)
        ok = group[group["succeeded"]]
        counts = group["outcome"].value_counts()
        errors = group.loc[~group["succeeded"], "error"] if "error" in group.columns else []
        error_counts = pd.Series(list(errors), dtype=object).value_counts()
        rows.append(
            [
                *(label(k) if not missing(k) else DASH for k in keys),
                str(len(group)),
                ", ".join(f"{o} {n}" for o, n in counts.items()),
                fmt(median(ok.get("setup_ms", pd.Series(dtype=float))), " ms"),
                fmt(median(ok.get("dc_goodput_mbps", pd.Series(dtype=float))), "", 1),
                fmt(median(ok.get("rtt_ms", pd.Series(dtype=float))), " ms", 1),
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
    return Section("overview", "Overview", table(header, rows, "overview"))


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
    # one grid per group (scenario, variant) and stack: neither is ever pooled
    for (name, stack), group in rows.groupby(["group", "stack"], sort=True):
        title = str(name)  # names the stack where the rows hold several
        a_values, b_values = ordered(list(group[col_a])), ordered(list(group[col_b]))
        grid: list[list[tuple[str, str, int]]] = []  # (outcome class, cell text, runs)
        for a in a_values:
            line = []
            for b in b_values:
                cell = group[(group[col_a].map(label) == a) & (group[col_b].map(label) == b)]
                kind = _cell_outcome(set(cell["outcome"]))
                setup = median(cell.loc[cell["succeeded"], "setup_ms"])
                text = "" if kind == "none" else kind
                if families := _families(cell):
                    text += f" {families}"
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
        grid_html = (
            f'<table class="nat-matrix"><thead><tr><th>{corner}</th>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
        legend = " ".join(
            f'<span class="swatch" style="background:{COLORS[k]}"></span>{html.escape(k)}'
            for k in ("direct", "relay", "failed", "direct/relay", "partial")
        )
        text = (
            f"<p>Each cell: how the calls connected and their median set-up time (offer created "
            f"to data channel open). {len(group)} runs by {html.escape(str(stack))} peers.</p>"
            f"{grid_html}<p>{legend}</p>{_race_note(group, str(stack))}"
        )
        figure = _matrix_figure(grid, a_values, b_values, label_a, label_b, title)
        slug = "matrix-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        sections.append(Section(slug, f"NAT matrix: {title}", text, figure))
    if several:
        # per scenario and variant: matrices of different families (or with and without TURN)
        # are different scenarios, never pooled
        for base, same in rows.groupby(group_labels(rows), sort=True):
            if same["stack"].nunique() > 1:
                sections.append(
                    _stacks_side_by_side(same, str(base), col_a, col_b, label_a, label_b)
                )
    return sections


def _families(cell: pd.DataFrame) -> str:
    """The families of a cell's selected pairs ("ipv6", "ipv4/ipv6"), in rows of a network
    that carries IPv6; empty for IPv4-only rows, which have no `ip_family`."""
    if "ip_family" not in cell.columns:
        return ""
    return "/".join(
        sorted({str(f) for f in cell.loc[cell["succeeded"], "ip_family"] if not missing(f)})
    )


def _race_note(group: pd.DataFrame, stack: str) -> str:
    """How many relayed calls had a direct pair that passed its checks too (the stack reports
    it as `direct_pair_succeeded`): relays the stack's nomination race decided, not the NATs."""
    if "direct_pair_succeeded" not in group.columns:
        return ""
    relayed = group[group["outcome"] == "relay"]
    raced = int(relayed["direct_pair_succeeded"].map(lambda v: v is True or v == 1).sum())
    if not raced:
        return ""
    return (
        f'<p class="race">Note: {raced} of {len(relayed)} relayed calls had a direct pair that '
        f"also passed its checks: {html.escape(stack)} nominated the relay first (a race), "
        "the NATs did not need TURN.</p>"
    )


def _stacks_side_by_side(
    rows: pd.DataFrame, base: str, col_a: str, col_b: str, label_a: str, label_b: str
) -> Section:
    """Per matrix cell, what each stack did: path and median set-up, cells where the stacks
    took different paths marked, so a difference of behaviour is one look away."""
    stacks = sorted(rows["stack"].unique(), key=lambda s: (s != DEFAULT_KIND, s))
    header = [label_a, label_b, *(f"{s}: path, median set-up" for s in stacks), "paths differ"]
    lines = []
    for a in ordered(list(rows[col_a])):
        for b in ordered(list(rows[col_b])):
            cell = rows[(rows[col_a].map(label) == a) & (rows[col_b].map(label) == b)]
            paths = []
            line = [a, b]
            for stack in stacks:
                runs = cell[cell["stack"] == stack]
                kind = _cell_outcome(set(runs["outcome"]))
                setup = median(runs.loc[runs["succeeded"], "setup_ms"])
                families = _families(runs)
                shown = f"{kind} {families}" if families else kind
                line.append(DASH if kind == "none" else f"{shown}, {fmt(setup, ' ms')}")
                if kind != "none":
                    paths.append(kind)
            line.append("yes" if len(set(paths)) > 1 else "")
            lines.append(line)
    text = (
        "<p>The same networks called with each WebRTC stack (offerer -> answerer)."
        " Where the paths differ, the stacks' ICE implementations chose differently on the same"
        " network (e.g. a relayed pair nominated although hole punching works).</p>"
        + table(header, lines, "stacks")
    )
    slug = "matrix-stacks-" + re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
    return Section(slug, f"NAT matrix by WebRTC stack: {base}", text)


def _matrix_figure(
    grid: list[list[tuple[str, str, int]]],
    a_values: list[str],
    b_values: list[str],
    label_a: str,
    label_b: str,
    title: str,
) -> Figure:
    image = np.array([[rgb(COLORS[kind]) for kind, _, _ in line] for line in grid])
    figure, ax = new_figure(1.6 + 1.5 * len(b_values), 1.4 + 1.0 * len(a_values))
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

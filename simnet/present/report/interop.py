"""The interop grid of `simnet interop` rows: per network, offerer's stack down, answerer's
across, each cell the calls' path and median set-up. Rows of different networks are never
pooled (one panel each); a pair that has no row on a network needing a capability its stack
lacks (by the registry) is shown as unsupported, naming the capability."""

from __future__ import annotations

import html
import re

import pandas as pd

from simnet.peerkinds import KINDS
from simnet.present.report.figures import COLORS
from simnet.present.report.grid import cell_outcome
from simnet.present.report.markup import Section
from simnet.present.report.rows import median, missing

UNSUPPORTED_COLOR = "#f7f7f7"


def interop_grids(frame: pd.DataFrame) -> list[Section]:
    """One section per network that holds `simnet interop` rows (a `network` column)."""
    if "network" not in frame.columns or not frame["network"].notna().any():
        return []
    rows = frame[frame["network"].notna()]
    # the stacks of every network's rows: a stack may have no row on a network it cannot use
    stacks = _stacks(rows)
    return [_panel(str(name), group, stacks) for name, group in rows.groupby("network", sort=False)]


def _stacks(group: pd.DataFrame) -> list[str]:
    seen = {str(k) for k in (*group["offerer_peer"], *group["answerer_peer"]) if not missing(k)}
    return [k for k in KINDS if k in seen] + sorted(seen - set(KINDS))


def _unsupported(needs: str, offerer: str, answerer: str) -> str | None:
    """The first capability of `needs` ("turn_tls,...") the pair's stacks lack, per the registry."""
    for capability in filter(None, needs.split(",")):
        for kind in (offerer, answerer):
            spec = KINDS.get(kind)
            if spec is not None and not getattr(spec.capabilities, capability, True):
                return f"unsupported: {capability} ({kind})"
    return None


def _panel(network: str, group: pd.DataFrame, stacks: list[str]) -> Section:
    needs = next((str(n) for n in group.get("needs", []) if not missing(n)), "")
    body = ""
    for offerer in stacks:
        cells = ""
        for answerer in stacks:
            runs = group[(group["offerer_peer"] == offerer) & (group["answerer_peer"] == answerer)]
            kind = cell_outcome(set(runs["outcome"]))
            text = kind
            if kind == "none":
                text = _unsupported(needs, offerer, answerer) or "not run"
            elif (setup := median(runs.loc[runs["succeeded"], "setup_ms"])) is not None:
                text += f"\n{setup:.0f} ms"
            color = UNSUPPORTED_COLOR if kind == "none" else COLORS[kind]
            cells += (
                f'<td class="cell-{kind.replace("/", "-")}" style="background:{color}" '
                f'title="{len(runs)} run(s)">{html.escape(text).replace(chr(10), "<br>")}</td>'
            )
        body += f"<tr><th>{html.escape(offerer)}</th>{cells}</tr>"
    head = "".join(f"<th>{html.escape(s)}</th>" for s in stacks)
    scenarios = ", ".join(sorted({str(s) for s in group["scenario"]}))
    text = (
        f"<p>Network {html.escape(network)} (scenario {html.escape(scenarios)}): each cell, how "
        "the calls from the row's stack (offerer) to the column's (answerer) connected and their "
        f"median set-up time. {len(group)} runs.</p>"
        f'<table class="nat-matrix"><thead><tr><th>offerer \\ answerer</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )
    slug = "interop-" + re.sub(r"[^a-z0-9]+", "-", network.lower()).strip("-")
    return Section(slug, f"Interop grid: {network}", text)

"""The population section: the fleet's shares with their intervals, each class's part of the
TURN share, and the sensitivity of that share to each class's share."""

from __future__ import annotations

import html

import pandas as pd

from simnet.population.estimate import estimate_of_rows
from simnet.present.report.figures import new_figure
from simnet.present.report.markup import Section, table


def population(frame: pd.DataFrame) -> Section | None:
    """`simnet population` rows: the fleet's shares with their intervals, each class's part of
    the TURN share, and the sensitivity of that share to each class's share (a tornado plot).
    The class shares are the rows' own class frequencies (the report has no mix file)."""
    if "offerer_class" not in frame.columns:
        return None
    rows = frame[frame["offerer_class"].notna()]
    if rows.empty:
        return None
    result = estimate_of_rows(rows.to_dict("records"))
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
        + table(["outcome", "share", "95 % interval (Wilson)"], shares, "population")
        + table(["side", "class", "part of the TURN share"], parts, "population-classes")
    )
    figure, ax = new_figure(7, 0.45 * len(result.sensitivity) + 1.2)
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

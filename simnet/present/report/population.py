"""The population section: the fleet's shares with their intervals, each pair of stacks' shares
(a fleet that mixes stacks), each class's part of the TURN share, and the sensitivity of that
share to each class's share."""

from __future__ import annotations

import html
import re

import pandas as pd

from simnet.population.estimate import OUTCOMES, OutcomeShares, estimate_of_rows
from simnet.present.report.figures import new_figure
from simnet.present.report.markup import Section, table
from simnet.results.schema import Outcome


def population(frame: pd.DataFrame) -> list[Section]:
    """`simnet population` rows, one section per population (the mix, `population`) and the
    stacks it drew from (`population_stacks`: a run of aiortc and one of Chromium are never
    pooled; a run that drew its stacks from the mix is one fleet, its pairs of stacks shown
    apart): the fleet's shares with their intervals, each class's part of the TURN share, and
    the sensitivity of that share to each class's share (a tornado plot). The class shares are
    the rows' own class frequencies (the report has no mix file)."""
    if "offerer_class" not in frame.columns:
        return []
    rows = frame[frame["offerer_class"].notna()]
    # a population's calls have one scenario per drawn cell: the fleet is the mix
    mixes = rows["population"] if "population" in rows.columns else rows["scenario"]
    stacks = rows["stack"]  # rows from before `population_stacks`: one stack a run
    if "population_stacks" in rows.columns:
        stacks = rows["population_stacks"].where(rows["population_stacks"].notna(), stacks)
    groups = list(rows.groupby([mixes.fillna("?").map(str), stacks.map(str)], sort=True))
    return [
        _population(str(name), str(stack), group, len(groups) > 1)
        for (name, stack), group in groups
    ]


def _population(name: str, stack: str, rows: pd.DataFrame, several: bool) -> Section:
    result = estimate_of_rows(rows.to_dict("records"))
    shares = [[outcome, *_share_and_interval(result, outcome)] for outcome in OUTCOMES]
    parts = [
        [side, html.escape(network_class), f"{part * 100:.1f} %"]
        for side, classes in result.contributions.items()
        for network_class, part in classes.items()
    ]
    pairs = [
        [pair.offerer_stack, pair.answerer_stack, str(pair.calls)]
        + ["{} ({})".format(*_share_and_interval(pair, outcome)) for outcome in OUTCOMES]
        for pair in result.stack_pairs
    ]
    by_stacks = (
        table(["offerer", "answerer", "calls", *OUTCOMES], pairs, "population-stacks")
        if len(pairs) > 1
        else ""
    )
    race = result.race_note()
    body = (
        f"<p>{html.escape(name)}: {result.calls} calls by {html.escape(stack)} peers; relay share"
        f" weighted by the classes' shares: {result.model_relay_share * 100:.1f} %</p>"
        + (f'<p class="race">Note: {html.escape(race)}.</p>' if race else "")
        + table(["outcome", "share", "95 % interval (Wilson)"], shares, "population")
        + by_stacks
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
    title = f"Population, {stack}: share of calls through TURN"
    slug = "population"
    if several:
        title = f"Population {name}, {stack}: share of calls through TURN"
        slug += "-" + re.sub(r"[^a-z0-9]+", "-", f"{name} {stack}".lower()).strip("-")
    return Section(slug, title, body, figure)


def _share_and_interval(shares: OutcomeShares, outcome: Outcome) -> tuple[str, str]:
    share, low, high = shares.share_of(outcome)
    return f"{share * 100:.1f} %", f"{low * 100:.1f} - {high * 100:.1f} %"

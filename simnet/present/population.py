"""`simnet population`'s presentation: the estimate, each pair of stacks' shares (when the
fleet mixes stacks), then the sensitivity table."""

from __future__ import annotations

from pathlib import Path

from rich.console import RenderableType
from rich.table import Table

from simnet import show
from simnet.population.estimate import (
    OUTCOMES,
    OutcomeShares,
    PopulationEstimate,
    StackPairShares,
)
from simnet.results.schema import Outcome


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f} %"


def population_tables(
    name: str, result: PopulationEstimate, seed: int, out_dir: Path
) -> list[RenderableType]:
    shares = Table(
        title=show.text(
            f"{name}, {result.stack}: {result.calls} calls (seed {seed}), rows in {out_dir}"
        )
    )
    for column in ("outcome", "share", "95 % interval (Wilson)"):
        shares.add_column(column)
    for outcome in OUTCOMES:
        shares.add_row(outcome, *with_interval(result, outcome))
    protocols = ", ".join(
        f"{kind} {_pct(v, 0)}" for kind, v in sorted(result.relay_protocol_shares.items())
    )
    summary = show.text(
        f"relayed over: {protocols or '-'}; bytes through TURN: "
        f"{_pct(result.relayed_bytes_share)}; set-up p50 {result.setup_ms_p50} ms, p95 "
        f"{result.setup_ms_p95} ms; each pair's measured relay rate weighted by the mix's "
        f"shares: {_pct(result.model_relay_share)} relayed"
    )
    sensitivity = Table(title="the TURN share if one class's share moves by 10 points")
    for column in ("side", "class", "share", "at -10 points", "its part now", "at +10 points"):
        sensitivity.add_column(column)
    for row in result.sensitivity:
        sensitivity.add_row(
            row.side,
            show.text(row.network_class),
            _pct(row.share, 0),
            _pct(row.relay_share_minus),
            _pct(result.contributions[row.side][row.network_class]),
            _pct(row.relay_share_plus),
        )
    race = result.race_note()
    notes = [show.text(("note:", "yellow"), f" {race}")] if race else []
    pairs = [stack_pair_table(result.stack_pairs)] if len(result.stack_pairs) > 1 else []
    return [shares, *pairs, summary, *notes, sensitivity]


def with_interval(shares: OutcomeShares, outcome: Outcome) -> tuple[str, str]:
    """An outcome's share and its 95 % interval, as the tables print them."""
    share, low, high = shares.share_of(outcome)
    return _pct(share), f"{_pct(low)} - {_pct(high)}"


def stack_pair_table(pairs: list[StackPairShares]) -> Table:
    """Each pair of stacks' calls and outcome shares with their 95 % intervals."""
    table = Table(title="by pair of stacks (95 % Wilson intervals)")
    for column in ("offerer", "answerer", "calls", *OUTCOMES):
        table.add_column(column)
    for pair in pairs:
        cells = ["{} ({})".format(*with_interval(pair, outcome)) for outcome in OUTCOMES]
        table.add_row(pair.offerer_stack, pair.answerer_stack, str(pair.calls), *cells)
    return table

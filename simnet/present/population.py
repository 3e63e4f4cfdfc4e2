"""`simnet population`'s presentation: the estimate, then the sensitivity table."""

from __future__ import annotations

from pathlib import Path

from rich.console import RenderableType
from rich.table import Table

from simnet import show
from simnet.population.estimate import PopulationEstimate


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f} %"


def population_tables(
    name: str, result: PopulationEstimate, seed: int, out_dir: Path
) -> list[RenderableType]:
    data = result.model_dump()
    shares = Table(
        title=show.text(
            f"{name}, {result.stack}: {result.calls} calls (seed {seed}), rows in {out_dir}"
        )
    )
    for column in ("outcome", "share", "95 % interval (Wilson)"):
        shares.add_column(column)
    for outcome in ("direct", "relay", "failed"):
        low, high = data[f"{outcome}_share_ci_low"], data[f"{outcome}_share_ci_high"]
        shares.add_row(outcome, _pct(data[f"{outcome}_share"]), f"{_pct(low)} - {_pct(high)}")
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
    return [shares, summary, *notes, sensitivity]

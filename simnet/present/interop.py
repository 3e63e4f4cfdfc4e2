"""How `simnet interop` shows its grid: per network, a stack x stack table (offerer's stack down,
answerer's across) of how the calls connected and their median set-up time, or the capability a
pair lacks."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from simnet import show
from simnet.run.interop import InteropCell


def interop_grids(cells: Sequence[InteropCell]) -> list[Table]:
    """One table per network, in the order the cells came (rows of networks never pooled)."""
    networks = list(dict.fromkeys(c.network for c in cells))
    return [_grid(name, [c for c in cells if c.network == name]) for name in networks]


def _grid(network: str, cells: Sequence[InteropCell]) -> Table:
    kinds = list(dict.fromkeys(c.offerer for c in cells))
    grid = Table(title=f"interop on {network}: outcome, median set-up (offerer \\ answerer)")
    grid.add_column("A \\ B")
    for kind in kinds:
        grid.add_column(kind)
    for offerer in kinds:
        line: list[Text] = []
        for cell in (c for c in cells if c.offerer == offerer):
            line.append(_cell_text(cell))
        grid.add_row(show.text(offerer), *line)
    return grid


def _cell_text(cell: InteropCell) -> Text:
    if cell.unsupported:
        return show.text((cell.outcome, "dim"))
    color = {"direct": "green", "relay": "yellow"}.get(cell.outcome, "red") if cell.ok else "red"
    median = "" if cell.setup_ms_median is None else f" {cell.setup_ms_median:.0f} ms"
    return show.text((cell.outcome + ("" if cell.ok else " !"), color), median)


def unsupported_json(cell: InteropCell) -> str:
    """A pair that was not called, as one JSON object beside the calls' (`--json`): its network,
    stacks and `outcome` "unsupported: <capability> (<kind>)"."""
    return json.dumps(
        {
            "scenario": None,
            "network": cell.network,
            "offerer_peer": cell.offerer,
            "answerer_peer": cell.answerer,
            "outcome": cell.outcome,
            "connected": False,
        }
    )

"""How `simnet matrix` shows its grid: per ordered pair of NAT presets, how the calls connected
and their median set-up time."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from simnet import show
from simnet.peerkinds import PeerPair
from simnet.run.matrix import PRESETS, CellOutcome


def matrix_grid(outcomes: Sequence[CellOutcome], sides: PeerPair, turn: bool) -> Table:
    """The grid, titled with the stacks that made the calls; a cell whose relays were decided
    by the stack's nomination race (a direct pair passed its checks too) is marked `*`, and
    the caption says what that means."""
    stacks = sides[0] if sides[0] == sides[1] else f"{sides[0]} -> {sides[1]}"
    raced = sum(o.raced for o in outcomes)
    caption = (
        f"* {raced} relayed call(s) had a direct pair that also passed its checks: {stacks} "
        "nominated the relay first (a race), the NATs did not need TURN"
        if raced
        else None
    )
    grid = Table(
        title=f"NAT matrix, {stacks} ({'with' if turn else 'without'} TURN): outcome, "
        "median set-up",
        caption=caption,
    )
    grid.add_column("A \\ B")
    for preset in PRESETS:
        grid.add_column(preset)
    for nat_a in PRESETS:
        cells_out: list[Text] = []
        for o in (o for o in outcomes if o.nat_a == nat_a):
            color = {"direct": "green", "relay": "yellow"}.get(o.outcome, "red")
            median = "" if o.setup_ms_median is None else f" {o.setup_ms_median:.0f} ms"
            mark = "*" if o.raced else ""
            cells_out.append(show.text((o.outcome + mark, color), median))
        grid.add_row(show.text(nat_a), *cells_out)
    return grid

"""How `simnet matrix` shows its grid: per ordered pair of NAT presets (IPv6 firewalls in the
IPv6-only matrix), how the calls connected and their median set-up time."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from simnet import show
from simnet.peerkinds import PeerPair
from simnet.run.matrix import DIRECT_V4, DUAL_FIRST_PAIR, CellOutcome, MatrixFamily, axis
from simnet.scenario.family import V6Filtering

#: what each family's matrix is, in its title
FAMILY_TITLES: dict[MatrixFamily, str] = {
    "v4": "NAT matrix",
    "dual": "NAT matrix, dual stack (IPv6 behind each router's firewall)",
    "v6": "IPv6-only matrix (each side's IPv6 firewall, v6_filtering)",
}


def matrix_grid(
    outcomes: Sequence[CellOutcome], sides: PeerPair, turn: bool, family: MatrixFamily = "v4"
) -> Table:
    """The grid, titled with the family and the stacks that made the calls; where the networks
    carry IPv6 each cell names the family of its calls' selected pairs. A cell whose relays were
    decided by the stack's nomination race (a direct pair passed its checks too) is marked `*`,
    and the caption says what that means."""
    stacks = sides[0] if sides[0] == sides[1] else f"{sides[0]} -> {sides[1]}"
    raced = sum(o.raced for o in outcomes)
    notes = []
    if raced:
        notes.append(
            f"* {raced} relayed call(s) had a direct pair that also passed its checks: {stacks} "
            "nominated the relay first (a race), the NATs did not need TURN"
        )
    if any(DIRECT_V4 in o.paths for o in outcomes):
        notes.append(f"direct ipv4 on dual stack: {DUAL_FIRST_PAIR}")
    if family == "v6":
        notes.append("rows and columns: each side's IPv6 firewall; no NAT, no IPv4")
    grid = Table(
        title=f"{FAMILY_TITLES[family]}, {stacks} ({'with' if turn else 'without'} TURN): "
        "outcome, median set-up",
        caption="\n".join(notes) or None,
    )
    grid.add_column("A \\ B")
    values = axis(family)
    for value in values:
        grid.add_column(V6Filtering(value).short if family == "v6" else value)
    for nat_a in values:
        cells_out: list[Text] = []
        for o in (o for o in outcomes if o.nat_a == nat_a):
            paths = {label.split(" ")[0] for label in o.paths}  # "direct ipv6": direct
            path = paths.pop() if len(paths) == 1 else ""
            color = {"direct": "green", "relay": "yellow"}.get(path, "red")
            median = "" if o.setup_ms_median is None else f" {o.setup_ms_median:.0f} ms"
            mark = "*" if o.raced else ""
            cells_out.append(show.text((o.outcome + mark, color), median))
        name = V6Filtering(nat_a).short if family == "v6" else nat_a
        grid.add_row(show.text(name), *cells_out)
    return grid

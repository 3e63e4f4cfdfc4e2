"""How `simnet verify-nat` shows its measurements: one table line per NAT and family (a
network with IPv6 has a line for its router's IPv6 side), measured behaviour and whether it is
what the scenario configured."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from simnet import show
from simnet.addresses import IPV6
from simnet.run.verify_nat import NatVerdict
from simnet.scenario.family import FAMILY_WORDS, V6Filtering


def verdicts_table(scenario: str, verdicts: Sequence[NatVerdict], lifetime_max: float) -> Table:
    """`lifetime_max`: how long binding lifetimes were measured for (0: not measured)."""
    table = Table(title=show.text(f"NAT behaviour, measured: {scenario}"))
    for column in ("nat", "mapping", "filtering", "ports", "hairpin", "lifetime", "verdict"):
        table.add_column(column)
    for v in verdicts:
        o = v.observed
        name = f"{v.nat} (IPv6)" if v.family == FAMILY_WORDS[IPV6] else v.nat
        if v.nat64:
            name = f"{v.nat} (NAT64)"
        if o is None:
            verdict = show.text(
                ("UDP blocked, as configured", "green")
                if v.as_configured
                else ("unreachable", "red")
            )
            table.add_row(show.text(name), "-", "-", "-", "-", "-", verdict)
            continue
        lifetime = "-"
        if o.lifetime_upper_s is not None:
            lifetime = f"{o.lifetime_lower_s:g}-{o.lifetime_upper_s:g} s"
        elif lifetime_max:
            lifetime = f"> {lifetime_max:g} s"
        verdict = show.text(
            ("as configured", "green") if v.as_configured else ("; ".join(v.mismatches), "red")
        )
        mapping = o.mapping.short if o.translates else "no NAT"
        filtering = o.filtering.short
        if v.family == FAMILY_WORDS[IPV6]:  # never translated: the firewall's filtering
            mapping, filtering = "none", V6Filtering.of(o.filtering).short
        cells = (
            name,
            mapping,
            filtering,
            o.port_allocation.value,
            str(o.hairpin).lower(),
            lifetime,
        )
        table.add_row(*map(show.text, cells), verdict)
    return table

"""How `simnet validate` and `simnet up` show a network: the plan's nodes one line each, the
built network's nodes as a table."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from simnet import show
from simnet.net.plan import NetworkPlan, Role

if TYPE_CHECKING:  # the type only: printing a plan needs none of the building code
    from simnet.net.builder import Network
    from simnet.net.impair.shaping import Lateness


def plan_lines(plan: NetworkPlan) -> list[Text]:
    """One line per node: its role, addresses and NAT behaviour (and where a timeline moves it)."""
    lines = []
    for node in plan.nodes.values():
        addresses = ", ".join(
            dict.fromkeys(str(a) for addrs in node.addresses.values() for a in addrs)
        )
        behaviour = ""
        if node.router is not None:
            b = node.router.behavior
            behaviour = (
                f" nat: {b.mapping.value} mapping, {b.filtering.value} filtering, "
                f"{b.port_allocation.value} ports, hairpin {b.hairpin}, {b.udp_timeout_s}s"
                if b.translates
                else " (routes, no NAT)"
            )
        moves = [
            f"{a.address} behind {a.network}"
            for a in plan.attachments.get(node.name, {}).values()
            if a.veth.standby
        ]
        if moves:  # the interfaces a timeline moves the host onto
            behaviour += f" (moves to {', '.join(moves)})"
        lines.append(show.text(f"{node.name:>16} {node.role.value:<7} {addresses}{behaviour}"))
    return lines


def default_call_note(problem: str) -> Text:
    """A scenario without a `call:` section whose default call cannot be made here."""
    return show.text(
        ("note:", "yellow"),
        " no `call:` section, so `simnet run` would make the default call, which "
        f"cannot be made here: {problem}",
    )


def network_table(network: Network) -> Table:
    """The built network: each node's role, namespace, addresses and what it is behind."""
    table = Table(title=show.text(f"run {network.run.id}: {network.plan.scenario.name}"))
    for column in ("node", "role", "namespace", "addresses", "behind"):
        table.add_column(column)
    for node in network.plan.nodes.values():
        addresses = ", ".join(
            f"{ifname} {a}" for ifname, addrs in node.addresses.items() for a in addrs
        )
        if node.role is Role.CORE:
            addresses = "192.0.2.1 (core router of the emulated internet)"
        cells = (node.name, node.role.value, network.ns(node.name), addresses, node.behind or "")
        table.add_row(*map(show.text, cells))
    return table


def late_status(totals: list[Lateness]) -> Text:
    """`simnet up`'s status of its delay lines: per direction, the packets released more than
    1 ms after their due time so far, of those released, and the worst lateness."""
    parts = [
        f"{line.name} {line.late} of {line.released}"
        + (f" (worst {line.late_max_s * 1e3:.1f} ms)" if line.late else "")
        for line in totals
    ]
    late = any(line.late for line in totals)
    return show.text(
        (
            f"{time.strftime('%H:%M:%S')} delay lines, packets released >1 ms late so far: "
            + ", ".join(parts),
            "yellow" if late else "",
        )
    )

"""How `simnet validate` and `simnet up` show a network: the plan's nodes one line each, its
links (what each cable does to packets) and the call `simnet run` would make; the built
network's nodes as a table."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from simnet import show
from simnet.addresses import IPV4
from simnet.net.plan import ADDRESSING, CORE, NetworkPlan, Role, RouterPlan
from simnet.scenario.family import family_list
from simnet.scenario.model import (
    DEFAULT_QUEUE_PACKETS,
    CallSpec,
    Expectation,
    Impairment,
    Scenario,
)

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
            behaviour += _family_text(node.router)
        moves = [
            f"{a.address} behind {a.network}"
            for a in plan.attachments.get(node.name, {}).values()
            if a.veth.standby
        ]
        if moves:  # the interfaces a timeline moves the host onto
            behaviour += f" (moves to {', '.join(moves)})"
        lines.append(show.text(f"{node.name:>16} {node.role.value:<7} {addresses}{behaviour}"))
    return lines


def _family_text(router: RouterPlan) -> str:
    """What a router does besides translating IPv4: its IPv6 side, NAT64, black holes."""
    parts = []
    if router.lan6 is not None:
        parts.append(f"IPv6 routed, {router.v6_filtering.value} filtering")
    if router.nat64_prefix is not None:
        parts.append(f"NAT64 {router.nat64_prefix} via {router.nat64_pool}")
    if router.blackholed:
        parts.append(f"{family_list(router.blackholed)} black-holed")
    return f"; {'; '.join(parts)}" if parts else ""


def impairment_text(impairment: Impairment) -> str:
    """One direction of a link in a few words: `40 ms ± 10 ms uniform, 2 % loss`."""
    if impairment.is_ideal and impairment.queue_packets == DEFAULT_QUEUE_PACKETS:
        return "ideal"
    parts = []
    if impairment.delay_ms or impairment.jitter_ms:
        delay = f"{impairment.delay_ms:g} ms"
        if impairment.jitter_ms:
            shape = {"uniform": "±", "normal": "sd"}.get(impairment.jitter_distribution)
            delay += (
                f" {shape} {impairment.jitter_ms:g} ms {impairment.jitter_distribution}"
                if shape
                else f", {impairment.jitter_distribution} jitter {impairment.jitter_ms:g} ms"
            )
        parts.append(delay)
    if impairment.loss_pct:
        parts.append(f"{impairment.loss_pct:g} % loss")
    if (burst := impairment.loss_burst) is not None:
        parts.append(
            f"bursty loss ({burst.mean_loss_pct:.3g} % on average, bad spells of "
            f"{burst.mean_bad_packets:.3g} packets)"
        )
    if impairment.duplicate_pct:
        parts.append(f"{impairment.duplicate_pct:g} % duplicated")
    if impairment.reorder:
        parts.append("reordering")
    if impairment.rate_kbit is not None:
        parts.append(f"{impairment.rate_kbit} kbit/s")
    if impairment.queue_packets != DEFAULT_QUEUE_PACKETS:
        parts.append(f"queue {impairment.queue_packets} packets")
    return ", ".join(parts) or "ideal"


def link_lines(plan: NetworkPlan) -> list[Text]:
    """One line per cable: the node, the network it plugs into, and what each direction does
    to packets (`up`: from the node towards the network)."""
    lines = [show.text(("links", "bold"), " (up: from the node towards its network):")]
    ideal = []
    for veth in plan.veths:
        network = "internet" if veth.b == CORE else f"{veth.b} LAN"
        where = f"{veth.a} -> {network}" + (" (standby, until a move)" if veth.standby else "")
        link = veth.link
        up, down = (
            (impairment_text(link.direction(d)) for d in ("up", "down")) if link else ("", "")
        )
        if link is None or (up == down == "ideal" and link.mtu is None):
            ideal.append(veth.a + (" (standby)" if veth.standby else ""))
            continue
        text = up if up == down else f"up {up}; down {down}"
        if link.mtu is not None:
            text += f"; mtu {link.mtu}"
        lines.append(show.text(f"  {where}: {text}"))
    if ideal:
        lines.append(show.text(f"  ideal (no impairment): {', '.join(ideal)}"))
    return lines


def call_lines(scenario: Scenario) -> list[Text]:
    """The call `simnet run` would make: who calls whom with which stacks, through which
    servers, carrying what, and what it must achieve; nothing when it cannot be made (the
    caller says why)."""
    call = scenario.call or CallSpec()
    if scenario.call_problems(call):
        return []
    head = "call:" if scenario.call else "call (the default: the file has no `call:` section):"
    peers = {role: getattr(call, role) for role in ("offerer", "answerer")}
    kinds = {role: scenario.hosts[name].peer_kind for role, name in peers.items()}
    turns = scenario.servers_of("turn")
    if call.turn_server is not None:
        turns = [call.turn_server]
    turn = (
        f"TURN {', '.join(turns)} over "
        f"{'/'.join(f'{t}:{call.turn_ports.of(t)}' for t in call.turn_transports)}"
        if call.turn and turns
        else "no TURN"
    )
    media = [k for k, on in (("audio", call.media.audio), ("video", call.media.video)) if on]
    lines = [
        show.text((head, "bold")),
        show.text(
            f"  {peers['offerer']} ({kinds['offerer']}) calls {peers['answerer']} "
            f"({kinds['answerer']}), signaling server {scenario.servers_of('signaling')[0]} "
            f"({call.signaling})"
        ),
        show.text(f"  {'STUN' if call.stun else 'no STUN'}, {turn}, ICE policy {call.ice_policy}"),
        show.text(
            f"  carries {call.data_bytes} bytes on the data channel"
            + (f", {' and '.join(media)} for {call.duration_s:g} s" if media else "")
            + (f", {call.concurrent} calls at once" if call.concurrent > 1 else "")
            + (f"; timeline of {len(call.timeline)} event(s)" if call.timeline else "")
        ),
    ]
    if call.expect is not None:
        lines.append(show.text(f"  must be: {_expected(call.expect)} (else `simnet run` exits 1)"))
    return lines


def _expected(expect: Expectation) -> str:
    wanted = ["connected" if expect.connected else "not connected"]
    if expect.error is not None:
        wanted.append(f"error {expect.error}")
    if expect.path is not None:
        wanted.append(f"path {expect.path}")
    if expect.relay_protocol is not None:
        wanted.append(f"relayed over {expect.relay_protocol}")
    if expect.ip_family is not None:
        wanted.append(f"over IPv{expect.ip_family[-1]}")
    if expect.via_nat64 is not None:
        wanted.append("through a NAT64" if expect.via_nat64 else "through no NAT64")
    if expect.rtt_ms is not None:
        wanted.append(f"RTT {expect.rtt_ms[0]:g}-{expect.rtt_ms[1]:g} ms")
    if expect.recovered is not None:
        wanted.append("recovered after the timeline" if expect.recovered else "not recovered")
    return ", ".join(wanted)


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
            families = sorted(network.plan.families or {IPV4})
            own = ", ".join(str(ADDRESSING[f].core) for f in families)
            addresses = f"{own} (core router of the emulated internet)"
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

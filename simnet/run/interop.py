"""`simnet interop`: a call for every ordered pair of WebRTC stacks, on each of a set of networks.

Each network is one scenario holding a host of every chosen stack on each side (`a-<kind>` behind
side A's network, `b-<kind>` behind side B's), so a network costs one build and its calls run
between warm agents, as the NAT matrix's do. The stacks come from the registry
(`simnet.peerkinds`): a kind added there joins the grid by its entry.

A network may need a capability of both stacks (`InteropNetwork.needs`, names of
`simnet.peerkinds.Capabilities` fields, e.g. `turn_tls` where only TURN over TLS on 443 gets
out). A pair where a stack lacks it is not called: the cell's outcome is
`unsupported: <capability> (<kind>)` and no row is written (a row is a call that was made).
Every other cell must meet its network's `call.expect` (without one: connect without an error).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from simnet.call.expect import unmet
from simnet.peerkinds import KINDS, NAMED_KINDS, Capabilities, find_program
from simnet.quantile import quantile
from simnet.results.schema import ResultRow
from simnet.run.calls import Cell, run_scenario
from simnet.scenario.model import CallSpec, Scenario

#: the capabilities a network can need, as the registry names them
CAPABILITY_NAMES: tuple[str, ...] = tuple(Capabilities.__dataclass_fields__)


@dataclass(frozen=True)
class InteropNetwork:
    """One network of the grid: its scenario (a host per stack and side: `host_name`), and the
    capabilities both stacks of a call need on it."""

    name: str
    scenario: Scenario
    needs: tuple[str, ...] = ()


def host_name(side: str, kind: str) -> str:
    """The host of stack `kind` on `side` ("a": the offerers', "b": the answerers')."""
    return f"{side}-{kind}"


def runnable_kinds() -> tuple[str, ...]:
    """The named kinds this machine can run, by the registry's doctor check (a kind without
    a requirement, simnet's own aiortc, always)."""
    return tuple(
        name
        for name in NAMED_KINDS
        if KINDS[name].requirement is None
        or find_program(KINDS[name].requirement.binaries) is not None  # type: ignore[union-attr]
    )


def interop_kinds(spec: str | None) -> tuple[str, ...]:
    """`--peers a,b,...` as kinds of the registry (default: `runnable_kinds`); ValueError
    naming the option and the choices for an unknown or repeated name."""
    if spec is None:
        return runnable_kinds()
    kinds = tuple(k.strip() for k in spec.split(","))
    unknown = [k for k in kinds if k not in NAMED_KINDS]
    if unknown or not kinds or len(set(kinds)) != len(kinds):
        raise ValueError(
            f"--peers {spec!r}: give distinct stacks separated by commas, each one of "
            f"{', '.join(NAMED_KINDS)}"
        )
    return kinds


def _hosts(kinds: Sequence[str], side_a: str, side_b: str) -> dict[str, dict[str, str]]:
    return {
        host_name(side, kind): {"behind": nat, "peer": kind}
        for side, nat in (("a", side_a), ("b", side_b))
        for kind in kinds
    }


def _scenario(name: str, description: str, fields: dict[str, Any]) -> Scenario:
    return Scenario.model_validate(
        {"name": f"interop-{name}", "description": description, **fields}
    )


#: the default networks, in the grid's order
DEFAULT_NETWORKS = ("lan", "prc-prc", "sym-sym-turn-udp", "udp-blocked-turn-tls")


def default_networks(kinds: Sequence[str]) -> list[InteropNetwork]:
    """Same LAN (host candidates); port-restricted x port-restricted (hole punching with STUN
    only); symmetric x symmetric (relayed by TURN over UDP); UDP blocked on both sides (only
    TURN over TLS on 443 gets out, `turn_tls` needed)."""
    call = {"offerer": host_name("a", kinds[0]), "answerer": host_name("b", kinds[0])}
    signaling = {"signaling": {"kind": "signaling"}}
    blocked = {
        "preset": "symmetric",
        "firewall": {"block_udp": True, "allow": ["tcp/443"]},
    }
    return [
        InteropNetwork(
            "lan",
            _scenario("lan", "both peers on one LAN", {
                "nats": {"home": {"preset": "port-restricted-cone"}},
                "hosts": _hosts(kinds, "home", "home"),
                "servers": signaling,
                "call": {**call, "expect": {"path": "direct"}},
            }),
        ),
        InteropNetwork(
            "prc-prc",
            _scenario("prc-prc", "port-restricted x port-restricted, STUN, no TURN", {
                "nats": {"a-nat": {"preset": "port-restricted-cone"},
                         "b-nat": {"preset": "port-restricted-cone"}},
                "hosts": _hosts(kinds, "a-nat", "b-nat"),
                "servers": {**signaling, "stun": {"kind": "stun"}},
                "call": {**call, "expect": {"path": "direct"}},
            }),
        ),
        InteropNetwork(
            "sym-sym-turn-udp",
            _scenario("sym-sym-turn-udp", "symmetric x symmetric through TURN over UDP", {
                "nats": {"a-nat": {"preset": "symmetric"}, "b-nat": {"preset": "symmetric"}},
                "hosts": _hosts(kinds, "a-nat", "b-nat"),
                "servers": {**signaling, "turn": {"kind": "turn"}},
                "call": {**call, "turn_transports": ["udp"],
                         "expect": {"path": "relay", "relay_protocol": "udp"}},
            }),
        ),
        InteropNetwork(
            "udp-blocked-turn-tls",
            _scenario("udp-blocked-turn-tls", "UDP blocked on both sides: TURN over TLS on 443", {
                "nats": {"a-office": blocked, "b-office": blocked},
                "hosts": _hosts(kinds, "a-office", "b-office"),
                "servers": {**signaling, "turn": {"kind": "turn"}},
                # no STUN: a peer that gathers before it offers would wait for its timeouts.
                # The URL is the server's address: a name needs DNS, which UDP-blocked LANs
                # do not reach here (measured: every call failed with a name and udp/53 let out)
                "call": {**call, "stun": False, "turn_transports": ["tls"],
                         "turn_ports": {"tls": 443},
                         "expect": {"path": "relay", "relay_protocol": "tls"}},
            }),
            needs=("turn_tls", "turn_tls_to_address"),
        ),
    ]  # fmt: skip


def needs_of(scenario: Scenario) -> tuple[str, ...]:
    """The capabilities a scenario file's network needs of both stacks: the TURN transport's
    where the call offers TURN over one transport only and it is not UDP, `ipv6` where every
    network is IPv6-only. (TURN over TCP and TLS together: no single capability is needed.)"""
    call = scenario.call
    needs: list[str] = []
    if call is not None and len(call.turn_transports) == 1 and call.turn_transports[0] != "udp":
        needs.append(f"turn_{call.turn_transports[0]}")
    if scenario.nats and all(nat.ip == "v6" for nat in scenario.nats.values()):
        needs.append("ipv6")
    return tuple(needs)


def network_of_file(scenario: Scenario, kinds: Sequence[str]) -> InteropNetwork:
    """A scenario file as a network of the grid: its call's offerer and answerer hosts are the
    templates of each side's hosts (a host per stack, `peer:` replaced); its other hosts stay.
    ValueError where the file has no call to take the two sides from."""
    if scenario.call is None:
        raise ValueError("call: an interop network needs a call (offerer and answerer hosts)")
    data = scenario.model_dump(mode="json")
    hosts = data["hosts"]
    sides = {scenario.call.offerer: "a", scenario.call.answerer: "b"}
    for name, side in sides.items():
        template = hosts.pop(name)
        for kind in kinds:
            hosts[host_name(side, kind)] = {**template, "peer": kind}
    data["call"] = _retarget(data["call"], {n: host_name(s, kinds[0]) for n, s in sides.items()})
    try:
        network = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ValueError("; ".join(str(e["msg"]) for e in exc.errors())) from None
    return InteropNetwork(scenario.name, network, needs_of(scenario))


def _retarget(call: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The call with its offerer, answerer and timeline targets renamed by `names`: a
    timeline that moves the offerer's host moves the host of the cell's offerer."""
    timeline = [
        {**event, "target": names.get(event.get("target", ""), event.get("target"))}
        if event.get("target") in names
        else event
        for event in call.get("timeline", [])
    ]
    return {**call, "offerer": names[call["offerer"]], "answerer": names[call["answerer"]],
            "timeline": timeline}  # fmt: skip


def missing_capability(network: InteropNetwork, offerer: str, answerer: str) -> str | None:
    """`<capability> (<kind>)` for the first capability the network needs that a stack of
    this pair lacks (the offerer's first), None where both have everything."""
    for capability in network.needs:
        for kind in (offerer, answerer):
            if not getattr(KINDS[kind].capabilities, capability):
                return f"{capability} ({kind})"
    return None


@dataclass(frozen=True)
class InteropPlan:
    """What `simnet interop` does on one network: the calls it makes (cells placed by
    `network`) and the pairs it does not call, with the capability each lacks."""

    network: InteropNetwork
    kinds: tuple[str, ...]
    cells: list[Cell]
    unsupported: dict[tuple[str, str], str]


def interop_plan(network: InteropNetwork, kinds: Sequence[str]) -> InteropPlan:
    """Every ordered pair of `kinds` on `network`: A's stack offers to B's."""
    call = network.scenario.call
    assert call is not None  # every network of the grid has one (default_networks, the file's)
    cells: list[Cell] = []
    unsupported: dict[tuple[str, str], str] = {}
    for offerer in kinds:
        for answerer in kinds:
            lacking = missing_capability(network, offerer, answerer)
            if lacking is not None:
                unsupported[offerer, answerer] = lacking
                continue
            names = {call.offerer: host_name("a", offerer), call.answerer: host_name("b", answerer)}
            spec = CallSpec.model_validate(_retarget(call.model_dump(), names))
            cells.append((spec, {"network": network.name, "needs": ",".join(network.needs)}))
    return InteropPlan(network, tuple(kinds), cells, unsupported)


@dataclass(frozen=True)
class InteropCell:
    """One ordered pair of stacks on one network: what its calls did against what the network
    expects, or the capability it lacks."""

    network: str
    offerer: str
    answerer: str
    #: "direct" / "relay" / "failed" (every outcome its calls had, joined by "/"), or
    #: "unsupported: turn_tls (firefox)"
    outcome: str
    ok: bool
    setup_ms_median: float | None = None
    #: why a call was not as expected (the first), for the exit message
    problem: str | None = None

    @property
    def unsupported(self) -> bool:
        return self.outcome.startswith("unsupported")

    def mismatch(self) -> str:
        return f"{self.network}: {self.offerer} -> {self.answerer}: {self.problem}"


def interop_cells(plan: InteropPlan, rows: Sequence[ResultRow]) -> list[InteropCell]:
    """Every cell of `plan`'s network, in the order of its kinds, from the rows its calls wrote."""
    name = plan.network.name
    expect = plan.network.scenario.call.expect if plan.network.scenario.call else None
    out: list[InteropCell] = []
    for offerer in plan.kinds:
        for answerer in plan.kinds:
            lacking = plan.unsupported.get((offerer, answerer))
            if lacking is not None:
                out.append(InteropCell(name, offerer, answerer, f"unsupported: {lacking}", True))
                continue
            runs = [
                r
                for r in rows
                if r.cell.get("network") == name
                and (r.call.offerer_peer, r.call.answerer_peer) == (offerer, answerer)
            ]
            problems = [p for r in runs for p in unmet(expect, r)]
            if not runs:
                problems.append("no call was made")
            setups = [r.call.setup_ms for r in runs if r.succeeded and r.call.setup_ms is not None]
            out.append(
                InteropCell(
                    name,
                    offerer,
                    answerer,
                    "/".join(sorted({str(r.outcome) for r in runs})) or "none",
                    not problems,
                    quantile(setups, 0.5),
                    problems[0] if problems else None,
                )
            )
    return out


def run_interop(
    plans: Sequence[InteropPlan],
    repeat: int = 1,
    on_row: Callable[[ResultRow], None] = lambda row: None,
) -> list[ResultRow]:
    """Each plan's network built in turn, its calls made `repeat` times, rows to `on_row` as
    each call ends; a network whose every pair is unsupported is not built."""
    rows: list[ResultRow] = []
    for plan in plans:
        if plan.cells:
            rows += run_scenario(plan.network.scenario, repeat, on_row, cells=plan.cells)
    return rows

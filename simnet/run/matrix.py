"""`simnet matrix`: every ordered pair of NAT presets, in one network, with expectations as data.

One network holds a NAT of each preset on each side, a peer behind each, one TURN server and one
signaling server; the 25 calls then run between warm agents, so the matrix costs one build.

The matrix has a family axis (`MatrixFamily`): `v4`, today's IPv4 networks; `dual`, every
network dual-stack (IPv4 translated as its preset says, IPv6 untranslated behind the router's
default stateful firewall); `v6`, every network IPv6-only. An IPv6-only network has no NAT, so
its matrix's rows and columns are not NAT presets but the IPv6 firewall's filtering
(`V6_AXIS`: open, address-dependent, address-and-port-dependent): 9 cells, not 25.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simnet.peerkinds import DEFAULT_PAIR, PeerPair
from simnet.quantile import quantile
from simnet.results.schema import ResultRow
from simnet.run.calls import Cell, run_scenario
from simnet.scenario.family import IP_VERSIONS, IpVersion, V6Filtering
from simnet.scenario.model import CallSpec, Scenario

PRESETS = ("open", "full-cone", "restricted-cone", "port-restricted-cone", "symmetric")
#: the axis of the IPv6-only matrix: each side's IPv6 firewall (`nats.X.v6_filtering`)
V6_AXIS = tuple(f.value for f in V6Filtering)
SHORT = {
    "open": "op",
    "full-cone": "fc",
    "restricted-cone": "rc",
    "port-restricted-cone": "prc",
    "symmetric": "sym",
    "address-dependent": "adf",
    "address-and-port-dependent": "apdf",
}

#: `simnet matrix --family`: what every network of the matrix gives its users (`nats.X.ip`)
MatrixFamily = IpVersion
FAMILIES: tuple[MatrixFamily, ...] = IP_VERSIONS


def matrix_family(word: str) -> MatrixFamily:
    """`word` as a matrix family (ValueError naming the choices where it is none)."""
    for family in FAMILIES:
        if family == word:
            return family
    raise ValueError(f"--family {word!r}: choose one of {', '.join(FAMILIES)}")


# Where UDP hole punching cannot work (RFC 4787 / ICE theory): a symmetric NAT's mapping towards
# the other peer is unknown in advance, so a port-dependent filter on the other side (or a second
# symmetric NAT) drops every check. Everything else connects directly.
NEEDS_RELAY = frozenset(
    {
        ("symmetric", "symmetric"),
        ("symmetric", "port-restricted-cone"),
        ("port-restricted-cone", "symmetric"),
    }
)


#: the label of a call that connected, in a matrix whose networks carry IPv6: its path and the
#: family of its selected pair, e.g. "direct ipv6" (a failed call is "failed")
DIRECT_V6 = "direct ipv6"
DIRECT_V4 = "direct ipv4"
#: Why a dual-stack call of the matrix may end on IPv4 where a stack preferring IPv6 would
#: settle on IPv6 (measured: docs/guides/ipv6.md#the-matrix-per-family). ICE lets the
#: controlling agent use the first pair that works while checks go on. aioice gives every host
#: candidate one priority, whatever its family, nominates the first pair that succeeds and never
#: renominates; libwebrtc ranks IPv6 first but selects the first writable pair at once and moves
#: to the better IPv6 one later in the call (within 4 s, measured), after the matrix's short
#: calls have ended. So where an IPv4 check gets through first (an `open` or cone NAT letting it
#: in), the call ends on IPv4.
DUAL_FIRST_PAIR = (
    "the first pair that works carries the call: aioice never moves off it, libwebrtc moves "
    "to IPv6 later in a longer call"
)
#: a relayed pair's family is its relayed address's, and coturn relays in IPv4 when the client
#: asks for no family (RFC 6156), which neither stack does (docs/guides/ipv6.md, coturn): so a
#: relay is IPv4 in both families' matrices, relay/relay between two IPv6-only peers included
RELAY_V4 = "relay ipv4"


def axis(family: MatrixFamily = "v4") -> tuple[str, ...]:
    """The values along each side of the `family` matrix: NAT presets, or for IPv6-only
    networks (which translate nothing) the IPv6 firewall's filtering."""
    return V6_AXIS if family == "v6" else PRESETS


def expected_paths(
    nat_a: str, nat_b: str, turn: bool = True, family: MatrixFamily = "v4"
) -> frozenset[str]:
    """The outcomes ICE theory allows for this pair: direct, relay or failed, and in a matrix
    whose networks carry IPv6 the family of the selected pair with it ("direct ipv6").

    Where hole punching works and TURN is offered too, either path is a correct ICE outcome:
    aioice, as the controlling agent, nominates the first pair that succeeds, and a relayed pair
    can validate before a direct one whose first checks a filter dropped. Whether hole punching
    really works there is shown by the matrix without TURN, which must connect directly.

    With IPv6 there is no mapping: each side's host candidate is its public address, and a
    stateful firewall lets the other side's checks in once its own side has sent to them (the
    checks of both sides cross, as through a port-preserving NAT), whatever its filtering. So
    every cell connects directly over IPv6, IPv6-only networks included.

    On dual stack, the pair a matrix call ends on is the first pair that worked, of either
    family, wherever IPv4 hole punching works too (`DUAL_FIRST_PAIR`); where it cannot
    (`NEEDS_RELAY`), only IPv6 connects directly.
    """
    if family == "v4":
        if (nat_a, nat_b) in NEEDS_RELAY:
            return frozenset({"relay" if turn else "failed"})
        return frozenset({"direct", "relay"} if turn else {"direct"})
    direct = {DIRECT_V6}
    if family == "dual" and (nat_a, nat_b) not in NEEDS_RELAY:
        direct.add(DIRECT_V4)  # DUAL_FIRST_PAIR
    return frozenset({*direct, RELAY_V4} if turn else direct)


def matrix_name(turn: bool = True, family: MatrixFamily = "v4") -> str:
    """The matrix's scenario name, which its rows carry: one per family and TURN, so rows of
    different families or with and without TURN are never pooled by a report or a comparison."""
    return "nat-matrix" + ("" if family == "v4" else f"-{family}") + ("" if turn else "-no-turn")


def _network(value: str, family: MatrixFamily) -> dict[str, str]:
    """One side's network for an axis value: a NAT preset, dual-stack or not, or an IPv6-only
    network behind a firewall of that filtering."""
    if family == "v6":
        return {"ip": "v6", "v6_filtering": value}
    if family == "dual":
        return {"preset": value, "ip": "dual"}
    return {"preset": value}


def matrix_scenario(
    presets: tuple[str, ...] | None = None,
    turn: bool = True,
    peers: PeerPair = DEFAULT_PAIR,
    family: MatrixFamily = "v4",
) -> Scenario:
    """Side A and side B: one network of each axis value (`axis(family)` unless `presets`), with
    one peer behind each; A's peers are of kind `peers[0]`, B's of `peers[1]`."""
    nats: dict[str, dict[str, str]] = {}
    hosts: dict[str, dict[str, str]] = {}
    for side, kind in zip(("a", "b"), peers, strict=True):
        for value in presets or axis(family):
            nats[f"{side}-nat-{SHORT[value]}"] = _network(value, family)
            hosts[f"{side}-{SHORT[value]}"] = {
                "behind": f"{side}-nat-{SHORT[value]}",
                "peer": kind,
            }
    servers: dict[str, dict[str, str]] = {"signaling": {"kind": "signaling"}}
    servers["turn" if turn else "stun"] = {"kind": "turn" if turn else "stun"}
    return Scenario.model_validate(
        {"name": matrix_name(turn, family), "nats": nats, "hosts": hosts, "servers": servers}
    )


def matrix_cells(
    presets: tuple[str, ...] | None = None,
    pairs: list[tuple[str, str]] | None = None,
    base: CallSpec | None = None,
    family: MatrixFamily = "v4",
) -> list[Cell]:
    """Every ordered pair of axis values as a call from A's peer to B's; the cell columns are
    `nat_a` and `nat_b` (the axis values), and `family` where the networks carry IPv6."""
    base = base or CallSpec()
    values = presets or axis(family)
    cells: list[Cell] = []
    for nat_a, nat_b in pairs or [(a, b) for a in values for b in values]:
        call = base.model_copy(
            update={"offerer": f"a-{SHORT[nat_a]}", "answerer": f"b-{SHORT[nat_b]}"}
        )
        place = {"nat_a": nat_a, "nat_b": nat_b}
        cells.append((call, place if family == "v4" else {**place, "family": family}))
    return cells


def call_label(row: ResultRow, family: MatrixFamily = "v4") -> str:
    """What a matrix call did, in the words of `expected_paths`: its outcome, and where the
    networks carry IPv6 the family of its selected pair."""
    outcome = str(row.outcome)
    if family == "v4" or outcome == "failed":
        return outcome
    families = row.call.families
    return f"{outcome} {families.ip_family if families and families.ip_family else '?'}"


@dataclass(frozen=True)
class CellOutcome:
    """What one ordered pair of axis values did over its calls, against what ICE theory
    allows."""

    nat_a: str
    nat_b: str
    # "direct", "relay", "failed" (with the family in a matrix with IPv6: "direct ipv6"):
    # every outcome its calls had
    paths: frozenset[str]
    expected: frozenset[str]
    setup_ms_median: float | None
    # relayed calls where a direct pair passed its checks too (`direct_pair_succeeded`): the
    # relay was the stack's nomination race, not the NATs
    raced: int = 0

    @property
    def ok(self) -> bool:
        return self.paths <= self.expected

    @property
    def outcome(self) -> str:
        return "/".join(sorted(self.paths))

    def mismatch(self) -> str:
        wanted = "/".join(sorted(self.expected))
        return f"{self.nat_a} -> {self.nat_b}: {self.outcome}, expected {wanted}"


def matrix_outcomes(
    rows: Sequence[ResultRow],
    turn: bool,
    presets: tuple[str, ...] | None = None,
    family: MatrixFamily = "v4",
) -> list[CellOutcome]:
    """Every cell's outcome (A's axis value, then B's, in axis order) from the matrix's rows
    (each placed in its cell by `matrix_cells`: `nat_a`, `nat_b`)."""
    values = presets or axis(family)
    outcomes = []
    for nat_a in values:
        for nat_b in values:
            runs = [r for r in rows if (r.cell["nat_a"], r.cell["nat_b"]) == (nat_a, nat_b)]
            setups = [r.call.setup_ms for r in runs if r.succeeded and r.call.setup_ms is not None]
            outcomes.append(
                CellOutcome(
                    nat_a=nat_a,
                    nat_b=nat_b,
                    paths=frozenset(call_label(r, family) for r in runs),
                    expected=expected_paths(nat_a, nat_b, turn, family),
                    setup_ms_median=quantile(setups, 0.5),
                    raced=sum(
                        r.outcome == "relay" and bool(r.call.direct_pair_succeeded) for r in runs
                    ),
                )
            )
    return outcomes


def run_matrix(
    repeat: int = 1,
    turn: bool = True,
    on_row: Callable[[ResultRow], None] = lambda row: None,
    peers: PeerPair = DEFAULT_PAIR,
    family: MatrixFamily = "v4",
) -> list[ResultRow]:
    """`simnet matrix`: one network, every ordered pair of axis values called `repeat` times,
    A's peers offering to B's."""
    scenario = matrix_scenario(turn=turn, peers=peers, family=family)
    return run_scenario(scenario, repeat, on_row, cells=matrix_cells(family=family))

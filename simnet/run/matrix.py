"""`simnet matrix`: every ordered pair of NAT presets, in one network, with expectations as data.

One network holds a NAT of each preset on each side, a peer behind each, one TURN server and one
signaling server; the 25 calls then run between warm agents, so the matrix costs one build.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simnet.peerkinds import DEFAULT_PAIR, PeerPair
from simnet.quantile import quantile
from simnet.results.schema import ResultRow
from simnet.run.calls import Cell, run_scenario
from simnet.scenario.model import CallSpec, Scenario

PRESETS = ("open", "full-cone", "restricted-cone", "port-restricted-cone", "symmetric")
SHORT = {
    "open": "op",
    "full-cone": "fc",
    "restricted-cone": "rc",
    "port-restricted-cone": "prc",
    "symmetric": "sym",
}

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


def expected_paths(nat_a: str, nat_b: str, turn: bool = True) -> frozenset[str]:
    """The outcomes ICE theory allows for this pair: direct, relay or failed.

    Where hole punching works and TURN is offered too, either path is a correct ICE outcome:
    aioice, as the controlling agent, nominates the first pair that succeeds, and a relayed pair
    can validate before a direct one whose first checks a filter dropped. Whether hole punching
    really works there is shown by the matrix without TURN, which must connect directly.
    """
    if (nat_a, nat_b) in NEEDS_RELAY:
        return frozenset({"relay" if turn else "failed"})
    return frozenset({"direct", "relay"} if turn else {"direct"})


def matrix_scenario(
    presets: tuple[str, ...] = PRESETS, turn: bool = True, peers: PeerPair = DEFAULT_PAIR
) -> Scenario:
    """Side A and side B: one NAT of each preset, with one peer behind each; A's peers are of
    kind `peers[0]`, B's of `peers[1]`."""
    nats: dict[str, dict[str, str]] = {}
    hosts: dict[str, dict[str, str]] = {}
    for side, kind in zip(("a", "b"), peers, strict=True):
        for preset in presets:
            nats[f"{side}-nat-{SHORT[preset]}"] = {"preset": preset}
            hosts[f"{side}-{SHORT[preset]}"] = {
                "behind": f"{side}-nat-{SHORT[preset]}",
                "peer": kind,
            }
    servers: dict[str, dict[str, str]] = {"signaling": {"kind": "signaling"}}
    servers["turn" if turn else "stun"] = {"kind": "turn" if turn else "stun"}
    return Scenario.model_validate(
        {"name": "nat-matrix" if turn else "nat-matrix-no-turn", "nats": nats, "hosts": hosts,
         "servers": servers}
    )  # fmt: skip


def matrix_cells(
    presets: tuple[str, ...] = PRESETS,
    pairs: list[tuple[str, str]] | None = None,
    base: CallSpec | None = None,
) -> list[Cell]:
    base = base or CallSpec()
    cells: list[Cell] = []
    for nat_a, nat_b in pairs or [(a, b) for a in presets for b in presets]:
        call = base.model_copy(
            update={"offerer": f"a-{SHORT[nat_a]}", "answerer": f"b-{SHORT[nat_b]}"}
        )
        cells.append((call, {"nat_a": nat_a, "nat_b": nat_b}))
    return cells


@dataclass(frozen=True)
class CellOutcome:
    """What one ordered pair of presets did over its calls, against what ICE theory allows."""

    nat_a: str
    nat_b: str
    paths: frozenset[str]  # "direct", "relay", "failed": every outcome its calls had
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
    rows: Sequence[ResultRow], turn: bool, presets: tuple[str, ...] = PRESETS
) -> list[CellOutcome]:
    """Every cell's outcome (A's preset, then B's, in `presets` order) from the matrix's rows
    (each placed in its cell by `matrix_cells`: `nat_a`, `nat_b`)."""
    outcomes = []
    for nat_a in presets:
        for nat_b in presets:
            runs = [r.call for r in rows if (r.cell["nat_a"], r.cell["nat_b"]) == (nat_a, nat_b)]
            setups = [r.setup_ms for r in runs if r.succeeded and r.setup_ms is not None]
            outcomes.append(
                CellOutcome(
                    nat_a=nat_a,
                    nat_b=nat_b,
                    paths=frozenset(r.outcome for r in runs),  # a failed call: "failed"
                    expected=expected_paths(nat_a, nat_b, turn),
                    setup_ms_median=quantile(setups, 0.5),
                    raced=sum(r.outcome == "relay" and bool(r.direct_pair_succeeded) for r in runs),
                )
            )
    return outcomes


def run_matrix(
    repeat: int = 1,
    turn: bool = True,
    on_row: Callable[[ResultRow], None] = lambda row: None,
    peers: PeerPair = DEFAULT_PAIR,
) -> list[ResultRow]:
    """`simnet matrix`: one network, every ordered pair of presets called `repeat` times, A's
    peers offering to B's."""
    scenario = matrix_scenario(turn=turn, peers=peers)
    return run_scenario(scenario, repeat, on_row, cells=matrix_cells())

"""`simnet matrix`: every ordered pair of NAT presets, in one network, with expectations as data.

One network holds a NAT of each preset on each side, a peer behind each, one TURN server and one
signaling server; the 25 calls then run between warm agents, so the matrix costs one build.
"""

from __future__ import annotations

from typing import Any

from simnet.run.calls import Cell
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


def matrix_scenario(presets: tuple[str, ...] = PRESETS, turn: bool = True) -> Scenario:
    """Side A and side B: one NAT of each preset, with one peer behind each."""
    nats: dict[str, Any] = {}
    hosts: dict[str, Any] = {}
    for side in ("a", "b"):
        for preset in presets:
            nats[f"{side}-nat-{SHORT[preset]}"] = {"preset": preset}
            hosts[f"{side}-{SHORT[preset]}"] = {"behind": f"{side}-nat-{SHORT[preset]}"}
    servers: dict[str, Any] = {"signaling": {"kind": "signaling"}}
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

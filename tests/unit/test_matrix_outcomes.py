"""The NAT matrix's verdicts as data: each cell's outcomes against what ICE theory allows."""

from __future__ import annotations

import pytest

from simnet.results.schema import CallOutcome, ResultRow
from simnet.run.matrix import NEEDS_RELAY, PRESETS, matrix_outcomes, matrix_scenario
from simnet.run.peers import peer_pair


def _row(nat_a: str, nat_b: str, path: str | None, setup: float | None = 50.0) -> ResultRow:
    call = CallOutcome(connected=path is not None, path=path, setup_ms=setup if path else None)
    return ResultRow(call=call, scenario="nat-matrix", scenario_hash="", seed=0, run=0,
                     run_id="r", wall_ms=0.0, cell={"nat_a": nat_a, "nat_b": nat_b})  # fmt: skip


def _theory() -> list[ResultRow]:
    return [
        _row(a, b, "relay" if (a, b) in NEEDS_RELAY else "direct") for a in PRESETS for b in PRESETS
    ]


def test_calls_as_theory_says_are_all_ok() -> None:
    outcomes = matrix_outcomes(_theory(), turn=True)
    assert len(outcomes) == len(PRESETS) ** 2
    assert all(o.ok for o in outcomes)
    assert [(o.nat_a, o.nat_b) for o in outcomes][:2] == [(PRESETS[0], PRESETS[0]),
                                                          (PRESETS[0], PRESETS[1])]  # fmt: skip


def test_a_failed_call_where_relay_works_is_a_mismatch() -> None:
    rows = [*_theory(), _row("symmetric", "symmetric", None)]
    wrong = [o for o in matrix_outcomes(rows, turn=True) if not o.ok]
    assert [o.mismatch() for o in wrong] == ["symmetric -> symmetric: failed/relay, expected relay"]


def test_without_turn_relay_is_not_allowed_and_medians_are_per_cell() -> None:
    rows = [_row("open", "open", "relay", 10.0), _row("open", "open", "direct", 30.0)]
    [cell] = [o for o in matrix_outcomes(rows, turn=False) if (o.nat_a, o.nat_b) == ("open",) * 2]
    assert not cell.ok and cell.setup_ms_median == 20.0


def test_peers_option_sets_each_side_stack() -> None:
    """`--peers chromium` puts Chromium on both sides; `aiortc,chromium` makes every call an
    aiortc offerer (side A) calling a Chromium answerer (side B)."""
    assert peer_pair("chromium") == ("chromium", "chromium")
    assert peer_pair("aiortc, chromium") == ("aiortc", "chromium")
    scenario = matrix_scenario(peers=peer_pair("aiortc,chromium"))
    kinds = {name: host.peer for name, host in scenario.hosts.items()}
    assert {k for n, k in kinds.items() if n.startswith("a-")} == {"aiortc"}
    assert {k for n, k in kinds.items() if n.startswith("b-")} == {"chromium"}
    for bad in ("safari", "aiortc,chromium,aiortc", ""):
        with pytest.raises(ValueError, match="--peers"):
            peer_pair(bad)

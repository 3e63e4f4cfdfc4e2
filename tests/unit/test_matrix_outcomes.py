"""The NAT matrix's verdicts as data: each cell's outcomes against what ICE theory allows."""

from __future__ import annotations

import pytest
from rich.console import Console

from simnet.addresses import IPV4, IPV6
from simnet.cli import MatrixFamily
from simnet.net.plan import plan_network
from simnet.peerkinds import DEFAULT_PAIR
from simnet.present.matrix import matrix_grid
from simnet.results.schema import CallOutcome, FamilyFigures, ResultRow
from simnet.run.matrix import (
    FAMILIES,
    NEEDS_RELAY,
    PRESETS,
    axis,
    expected_paths,
    matrix_cells,
    matrix_family,
    matrix_name,
    matrix_outcomes,
    matrix_scenario,
)
from simnet.run.peers import peer_pair
from simnet.scenario.family import V6Filtering


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


def _family_row(nat_a: str, nat_b: str, path: str | None, ip_family: str | None) -> ResultRow:
    families = FamilyFigures(ip_family=ip_family) if path is not None else FamilyFigures()
    call = CallOutcome(connected=path is not None, path=path, setup_ms=50.0, families=families)
    return ResultRow(call=call, scenario="nat-matrix-dual", scenario_hash="", seed=0, run=0,
                     run_id="r", wall_ms=0.0, cell={"nat_a": nat_a, "nat_b": nat_b})  # fmt: skip


def test_the_ipv4_matrix_is_as_it_was() -> None:
    """`--family v4` (the default): the scenario, its name, cells and expectations unchanged."""
    scenario = matrix_scenario()
    assert scenario.name == "nat-matrix" and matrix_name(False) == "nat-matrix-no-turn"
    assert all(nat.ip == "v4" and nat.v6_filtering is None for nat in scenario.nats.values())
    assert {n.preset for n in scenario.nats.values()} == set(PRESETS)
    assert [c for _, c in matrix_cells()][:1] == [{"nat_a": "open", "nat_b": "open"}]
    assert expected_paths("symmetric", "symmetric", True) == {"relay"}
    assert expected_paths("open", "symmetric", False) == {"direct"}


def test_dual_matrix_is_every_preset_dual_stack_behind_the_default_ipv6_firewall() -> None:
    scenario = matrix_scenario(family="dual")
    assert scenario.name == "nat-matrix-dual"
    assert matrix_name(False, "dual") == "nat-matrix-dual-no-turn"
    assert {(n.preset, n.ip) for n in scenario.nats.values()} == {(p, "dual") for p in PRESETS}
    plan = plan_network(scenario)
    for host in scenario.hosts:
        assert plan.nodes[host].families == {IPV4, IPV6}, host
    for name in ("turn", "signaling"):
        assert plan.nodes[name].families == {IPV4, IPV6}
    filtering = {name: plan.nodes[name].router.v6_filtering for name in scenario.nats}  # type: ignore[union-attr]
    # RFC 6092's default everywhere, except preset open (a router that translates nothing)
    assert filtering["a-nat-op"] is V6Filtering.OPEN
    assert {f for n, f in filtering.items() if "-op" not in n} == {V6Filtering.APDF}
    cells = matrix_cells(family="dual")
    assert len(cells) == 25 and all(c["family"] == "dual" for _, c in cells)


def test_v6_matrix_is_ipv6_only_networks_along_the_ipv6_firewalls_filtering() -> None:
    """An IPv6-only network translates nothing: its axis is `v6_filtering`, 3x3 cells."""
    assert axis("v6") == ("open", "address-dependent", "address-and-port-dependent")
    scenario = matrix_scenario(family="v6")
    assert scenario.name == "nat-matrix-v6"
    assert {(n.ip, n.v6_filtering) for n in scenario.nats.values()} == {
        ("v6", f) for f in V6Filtering
    }
    plan = plan_network(scenario)
    for host in scenario.hosts:
        assert plan.nodes[host].families == {IPV6}, host
    cells = matrix_cells(family="v6")
    assert len(cells) == 9
    assert {(c["nat_a"], c["nat_b"]) for _, c in cells} == {
        (a, b) for a in axis("v6") for b in axis("v6")
    }


def test_expectations_per_family_from_theory() -> None:
    """IPv6 is never translated: direct over IPv6 in every cell of both families, also where
    IPv4 needs a relay; on dual stack also over IPv4 where IPv4 hole punching works (the first
    pair that works carries a short call); a relay is IPv4 (coturn's default family)."""
    for a in PRESETS:
        for b in PRESETS:
            ipv4 = set() if (a, b) in NEEDS_RELAY else {"direct ipv4"}
            assert expected_paths(a, b, False, "dual") == {"direct ipv6", *ipv4}
            assert expected_paths(a, b, True, "dual") == {"direct ipv6", "relay ipv4", *ipv4}
    for a in axis("v6"):
        for b in axis("v6"):
            assert expected_paths(a, b, False, "v6") == {"direct ipv6"}
            assert expected_paths(a, b, True, "v6") == {"direct ipv6", "relay ipv4"}


def test_a_cell_of_a_family_matrix_is_judged_on_its_pairs_family() -> None:
    rows = [
        _family_row("symmetric", "symmetric", "direct", "ipv6"),
        _family_row("open", "open", "direct", "ipv4"),
        _family_row("symmetric", "port-restricted-cone", "direct", "ipv4"),  # cannot be
        _family_row("full-cone", "open", None, None),
    ]
    by_cell = {(o.nat_a, o.nat_b): o for o in matrix_outcomes(rows, turn=False, family="dual")}
    assert by_cell["symmetric", "symmetric"].ok
    assert by_cell["symmetric", "symmetric"].outcome == "direct ipv6"
    assert by_cell["open", "open"].ok
    assert not by_cell["symmetric", "port-restricted-cone"].ok
    assert by_cell["symmetric", "port-restricted-cone"].mismatch() == (
        "symmetric -> port-restricted-cone: direct ipv4, expected direct ipv6"
    )
    assert not by_cell["full-cone", "open"].ok  # failed
    v6 = matrix_outcomes([_family_row("open", "open", "direct", "ipv4")], False, family="v6")
    assert len(v6) == 9 and not v6[0].ok


def test_the_cli_family_choices_are_the_matrix_families() -> None:
    assert [f.value for f in MatrixFamily] == list(FAMILIES)
    assert matrix_family("dual") == "dual"
    with pytest.raises(ValueError, match="--family"):
        matrix_family("v5")


def test_the_grid_names_its_family_and_its_axis() -> None:
    rows = [_family_row(a, b, "direct", "ipv6") for a in axis("v6") for b in axis("v6")]
    grid = matrix_grid(matrix_outcomes(rows, False, family="v6"), DEFAULT_PAIR, False, "v6")
    text = _render(grid)
    assert "IPv6-only matrix" in text and "APDF" in text and "ADF" in text
    assert "direct ipv6" in text and "no NAT, no IPv4" in text
    dual = [_family_row("open", "open", "direct", "ipv4")]
    text = _render(matrix_grid(matrix_outcomes(dual, False, family="dual"), DEFAULT_PAIR, False,
                               "dual"))  # fmt: skip
    assert "dual stack" in text and "first pair that works" in text


def _render(table: object) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()

"""The interop grid as data: its networks, the ordered pairs of stacks, capability gating, and
the verdicts that decide `simnet interop`'s exit code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from simnet import peerkinds
from simnet.net.plan import plan_network
from simnet.peerkinds import KINDS, NAMED_KINDS
from simnet.present.interop import interop_grids, unsupported_json
from simnet.present.report.interop import interop_grids as report_grids
from simnet.present.report.rows import prepare
from simnet.results.schema import CallOutcome, ResultRow
from simnet.run.interop import (
    CAPABILITY_NAMES,
    DEFAULT_NETWORKS,
    InteropPlan,
    default_networks,
    interop_cells,
    interop_kinds,
    interop_plan,
    needs_of,
    network_of_file,
    runnable_kinds,
)
from simnet.scenario.load import load_scenario

#: two stacks with every capability the default networks need (the gating tests take one away)
ONE, TWO = [
    k
    for k in NAMED_KINDS
    if KINDS[k].capabilities.turn_tls and KINDS[k].capabilities.turn_tls_to_address
][:2]
ROOT = Path(__file__).resolve().parents[2]


def _row(plan: InteropPlan, offerer: str, answerer: str, path: str | None) -> ResultRow:
    relay = "tls" if plan.network.needs else "udp"
    call = CallOutcome(
        connected=path is not None,
        path=path,
        relay_protocol=relay if path == "relay" else None,
        setup_ms=100.0 if path else None,
        offerer_peer=offerer,
        answerer_peer=answerer,
    )
    return ResultRow(call=call, scenario=plan.network.scenario.name, scenario_hash="", seed=0,
                     run=0, run_id="r", wall_ms=0.0,
                     cell={"network": plan.network.name, "needs": ""})  # fmt: skip


def _expected(plan: InteropPlan) -> str:
    expect = plan.network.scenario.call.expect  # type: ignore[union-attr]
    assert expect is not None and expect.path is not None
    return expect.path


def _as_expected(plan: InteropPlan) -> list[ResultRow]:
    return [
        _row(plan, c.offerer.removeprefix("a-"), c.answerer.removeprefix("b-"), _expected(plan))
        for c, _ in plan.cells
    ]


def test_every_ordered_pair_on_each_default_network() -> None:
    kinds = (ONE, TWO)
    networks = default_networks(kinds)
    assert [n.name for n in networks] == list(DEFAULT_NETWORKS)
    for network in networks:
        plan_network(network.scenario)  # each builds: addresses, LANs
        assert set(network.scenario.hosts) == {f"{s}-{k}" for s in "ab" for k in kinds}
        assert set(network.needs) <= set(CAPABILITY_NAMES)
        plan = interop_plan(network, kinds)
        pairs = [(c.offerer, c.answerer) for c, _ in plan.cells]
        assert pairs == [(f"a-{a}", f"b-{b}") for a in kinds for b in kinds]
        assert all(cell == {"network": network.name, "needs": ",".join(network.needs)}
                   for _, cell in plan.cells)  # fmt: skip
    tls = networks[-1]
    assert tls.needs == ("turn_tls", "turn_tls_to_address")
    call = tls.scenario.call
    assert call is not None and call.turn_transports == ["tls"] and call.turn_ports.tls == 443


def test_a_stack_lacking_a_needed_capability_is_unsupported_not_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = KINDS[TWO]
    lacking = dataclasses.replace(spec.capabilities, turn_tls=False)
    monkeypatch.setitem(peerkinds.KINDS, TWO, dataclasses.replace(spec, capabilities=lacking))
    tls = default_networks((ONE, TWO))[-1]
    plan = interop_plan(tls, (ONE, TWO))
    assert [(c.offerer, c.answerer) for c, _ in plan.cells] == [(f"a-{ONE}", f"b-{ONE}")]
    assert plan.unsupported == {
        (ONE, TWO): f"turn_tls ({TWO})",
        (TWO, ONE): f"turn_tls ({TWO})",
        (TWO, TWO): f"turn_tls ({TWO})",
    }
    cells = interop_cells(plan, _as_expected(plan))
    assert len(cells) == 4 and all(c.ok for c in cells)
    assert [c.outcome for c in cells if c.unsupported] == [f"unsupported: turn_tls ({TWO})"] * 3
    assert '"unsupported: turn_tls' in unsupported_json(cells[1])
    # a network needing nothing calls every pair
    assert not interop_plan(default_networks((ONE, TWO))[0], (ONE, TWO)).unsupported


def test_cells_as_expected_are_ok_and_a_wrong_path_or_a_missing_call_is_named() -> None:
    kinds = (ONE, TWO)
    for network in default_networks(kinds):
        plan = interop_plan(network, kinds)
        rows = _as_expected(plan)
        assert all(c.ok for c in interop_cells(plan, rows))
        wrong = [_row(plan, ONE, TWO, None), *rows[:1], *rows[2:]]
        bad = [c for c in interop_cells(plan, wrong) if not c.ok]
        assert [(c.offerer, c.answerer) for c in bad] == [(ONE, TWO)]
        assert bad[0].mismatch().startswith(f"{network.name}: {ONE} -> {TWO}: connected False")
        missing = [c for c in interop_cells(plan, rows[1:]) if not c.ok]
        assert [c.problem for c in missing] == ["no call was made"]


def test_rows_of_another_network_never_count() -> None:
    lan, punch = (interop_plan(n, (ONE,)) for n in default_networks((ONE,))[:2])
    [cell] = interop_cells(punch, _as_expected(lan))
    assert not cell.ok and cell.problem == "no call was made"


def test_peers_option() -> None:
    assert interop_kinds(f"{ONE}, {TWO}") == (ONE, TWO)
    assert interop_kinds(None) == runnable_kinds()
    assert NAMED_KINDS[0] in runnable_kinds()  # simnet's own peer needs nothing
    for bad in ("nosuch", f"{ONE},{ONE}", ""):
        with pytest.raises(ValueError, match="--peers"):
            interop_kinds(bad)


def test_a_scenario_file_becomes_a_network_with_its_needs() -> None:
    loaded = load_scenario(ROOT / "scenarios" / "corporate-udp-blocked.yaml", [])
    network = network_of_file(loaded, (ONE, TWO))
    assert network.name == loaded.name and network.needs == ("turn_tls",)
    hosts = network.scenario.hosts
    assert {h: hosts[h].behind for h in hosts} == {
        f"a-{ONE}": "office", f"a-{TWO}": "office", f"b-{ONE}": "home", f"b-{TWO}": "home"
    }  # fmt: skip
    assert hosts[f"b-{TWO}"].peer_kind == TWO
    assert needs_of(load_scenario(ROOT / "scenarios" / "direct-lan.yaml", [])) == ()


def test_grid_one_table_per_network() -> None:
    kinds = (ONE, TWO)
    cells = []
    for network in default_networks(kinds):
        plan = interop_plan(network, kinds)
        cells += interop_cells(plan, _as_expected(plan))
    grids = interop_grids(cells)
    assert len(grids) == len(DEFAULT_NETWORKS)
    console = Console(record=True, width=200)
    for grid in grids:
        console.print(grid)
    text = console.export_text()
    assert all(name in text for name in DEFAULT_NETWORKS) and "100 ms" in text


def test_report_one_panel_per_network_and_unsupported_cells_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = KINDS[TWO]
    lacking = dataclasses.replace(spec.capabilities, turn_tls=False)
    monkeypatch.setitem(peerkinds.KINDS, TWO, dataclasses.replace(spec, capabilities=lacking))

    def row(network: str, needs: str, a: str, b: str, path: str) -> dict[str, object]:
        return {"scenario": f"interop-{network}", "network": network, "needs": needs,
                "connected": True, "path": path, "error": None, "setup_ms": 40.0,
                "offerer_peer": a, "answerer_peer": b}  # fmt: skip

    frame = pd.DataFrame(
        [
            *(row("lan", "", a, b, "direct") for a in (ONE, TWO) for b in (ONE, TWO)),
            row("tls", "turn_tls", ONE, ONE, "relay"),
        ]
    )
    lan, tls = report_grids(prepare(frame))
    assert lan.title.endswith("lan") and tls.title.endswith("tls")
    assert lan.body.count("direct<br>40 ms") == 4 and "relay" not in lan.body
    assert tls.body.count("relay<br>40 ms") == 1
    assert tls.body.count(f"unsupported: turn_tls ({TWO})") == 3


def test_the_registry_decides_which_stacks_are_gated_on_the_tls_network() -> None:
    tls = default_networks(NAMED_KINDS)[-1]
    plan = interop_plan(tls, NAMED_KINDS)
    lacking = {
        k
        for k in NAMED_KINDS
        if not (KINDS[k].capabilities.turn_tls and KINDS[k].capabilities.turn_tls_to_address)
    }
    assert len(plan.cells) + len(plan.unsupported) == len(NAMED_KINDS) ** 2
    assert set(plan.unsupported) == {
        (a, b) for a in NAMED_KINDS for b in NAMED_KINDS if {a, b} & lacking
    }


def test_a_files_timeline_acts_on_each_cells_own_hosts() -> None:
    loaded = load_scenario(ROOT / "scenarios" / "handover-wifi-to-lte.yaml", [])
    plan = interop_plan(network_of_file(loaded, (ONE, TWO)), (ONE, TWO))
    for call, _ in plan.cells:
        assert [e.target for e in call.timeline if e.action == "move"] == [call.offerer]


def test_a_file_that_cannot_be_a_network_is_one_value_error() -> None:
    loaded = load_scenario(ROOT / "scenarios" / "direct-lan.yaml", [])
    with pytest.raises(ValueError, match="interop network needs a call"):
        network_of_file(loaded.model_copy(update={"call": None}), (ONE,))

"""Every output names a call the same way: one definition of success, one numbering, stacks apart.

Why: a new user saw `run` print `unexpected: call 1` for the row numbered `run 0`, an outcome
column saying "direct" for calls that failed, `compare` show 100 % success for a run `run` had
failed, and `report` pool aiortc and Chromium calls into one estimate. Each rule here is checked
on the outputs themselves, from the same rows, so no output can drift from the others.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import pytest
from aioice.ice import Candidate, CandidatePair
from rich.console import Console

from simnet.call.expect import unmet
from simnet.call.row import call_row
from simnet.cli import main
from simnet.peer.aiortc.aioice_adapter import direct_pair_succeeded
from simnet.peer.protocol import CallResult
from simnet.population.estimate import SampledCall, estimate_of_rows
from simnet.present.calls import calls_summary, json_line
from simnet.present.matrix import matrix_grid
from simnet.present.population import population_tables
from simnet.present.report.page import write_report
from simnet.present.report.population import population
from simnet.present.report.rows import prepare
from simnet.results.schema import CallOutcome, ResultRow, call_outcome_of, call_succeeded
from simnet.results.stats import succeeded, success_counts
from simnet.run.matrix import matrix_outcomes

ROOT = Path(__file__).resolve().parents[2]

#: (connected, error, path) -> the outcome every output must show
CASES = [
    (True, None, "direct", "direct"),
    (True, None, "relay", "relay"),
    (True, "timeout:datachannel", "direct", "failed"),  # connected, then no data: failed
    (False, "ice-failed", None, "failed"),
    (False, "timeout:ice", "relay", "failed"),
]


def _row(
    connected: bool,
    error: str | None,
    path: str | None,
    run: int = 0,
    stack: str = "aiortc",
    **cell: object,
) -> ResultRow:
    call = CallOutcome(
        connected=connected, error=error, path=path,  # type: ignore[arg-type]
        setup_ms=100.0 + run if connected else None, offerer_peer=stack, answerer_peer=stack,
    )  # fmt: skip
    return ResultRow(call=call, scenario="s", scenario_hash="h", seed=0, run=run, run_id="r",
                     wall_ms=0.0, cell=cell)  # fmt: skip


def _render(parts: list[Any]) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    for part in parts:
        console.print(part)
    return console.export_text()


@pytest.mark.parametrize(("connected", "error", "path", "want"), CASES)
def test_success_and_outcome_are_defined_once(
    connected: bool, error: str | None, path: str | None, want: str
) -> None:
    """The row, the stored frame (compare's and stats' view), the report, the population and
    the matrix all give one call the same outcome."""
    row = _row(connected, error, path, nat_a="open", nat_b="open")
    assert call_outcome_of(connected, error, path) == want == row.outcome
    assert row.succeeded == call_succeeded(connected, error) == (want != "failed")
    frame = pd.DataFrame([row.columns()])
    assert succeeded(frame).tolist() == [row.succeeded]
    assert success_counts(frame) == (int(row.succeeded), 1)
    assert prepare(frame)["outcome"].tolist() == [want]
    assert SampledCall.of_columns({**row.columns(), "offerer_class": "a",
                                   "answerer_class": "b"}).outcome == want  # fmt: skip
    [cell] = [o for o in matrix_outcomes([row], turn=True) if o.nat_a == o.nat_b == "open"]
    assert cell.paths == {want}
    assert json.loads(json_line(row))["outcome"] == want
    assert (unmet(None, row) == []) == row.succeeded  # `simnet run`'s verdict without expect


def test_stored_missing_values_read_as_not_connected_and_no_error() -> None:
    assert not call_succeeded(None, None) and not call_succeeded(float("nan"), None)
    assert call_succeeded(True, float("nan")) and call_succeeded(True, pd.NA)
    assert not call_succeeded(pd.NA, None)


def test_the_run_table_shows_a_failed_call_as_failed_with_its_run_number() -> None:
    rows = [_row(True, None, "direct", run=0), _row(True, "timeout:datachannel", "direct", run=1)]
    text = _render(calls_summary("s", rows, Path("out")))
    lines = [line for line in text.splitlines() if re.match(r"^\W*[01]\W", line)]
    assert len(lines) == 2
    assert "direct" in lines[0] and "failed" not in lines[0]
    assert "failed: timeout:datachannel" in lines[1] and "direct" not in lines[1].split("│")[2]


def test_run_numbers_its_failures_as_its_rows_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`simnet run`'s failure lines name the call by the row's `run`, the number its table,
    its JSON lines and the stored row carry."""
    made = [_row(True, None, "direct", run=0), _row(True, "timeout:datachannel", "direct", run=1)]

    def fake_run(scenario: Any, repeat: int, on_row: Callable[[ResultRow], None],
                 **_: Any) -> list[ResultRow]:  # fmt: skip
        for row in made:
            on_row(row)
        return made

    argv = ["simnet", "run", str(ROOT / "scenarios" / "direct-lan.yaml"), "--json",
            "--out", str(tmp_path), "--set", "call.expect=null"]  # fmt: skip
    with (
        mock.patch.object(sys, "argv", argv),
        mock.patch("simnet.cli.require_root"),
        mock.patch("simnet.run.calls.run_scenario", fake_run),
        pytest.raises(SystemExit) as exited,
    ):
        main()
    assert exited.value.code == 1
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["run"], line["outcome"]) for line in lines] == [(0, "direct"), (1, "failed")]
    assert "failed: run 1: error 'timeout:datachannel', expected none" in " ".join(err.split())
    assert "call 2" not in err and "run 0" not in err


def _stack_rows() -> pd.DataFrame:
    """A population of each stack, the same classes: aiortc relays half, Chromium none."""
    rows = []
    for stack, relayed in (("aiortc", 5), ("chromium", 0)):
        for k in range(10):
            path = "relay" if k < relayed else "direct"
            call = CallOutcome(
                connected=True, path=path, setup_ms=100.0, offerer_peer=stack,
                answerer_peer=stack, relay_protocol="udp" if path == "relay" else None,
                direct_pair_succeeded=True if stack == "aiortc" else None,
            )  # fmt: skip
            row = ResultRow(call=call, scenario="population-field", scenario_hash="h", seed=0,
                            run=k, run_id=stack, wall_ms=0.0)  # fmt: skip
            rows.append(row.placed(offerer_class="home", answerer_class="home").columns())
    return pd.DataFrame(rows)


def test_report_never_pools_stacks(tmp_path: Path) -> None:
    """aiortc and Chromium rows of one scenario: two overview rows, two population sections,
    each with its own estimate (50 % and 0 % relayed, never a pooled 25 %)."""
    frame = _stack_rows()
    prepared = prepare(frame)
    assert set(prepared["group"]) == {"population-field, aiortc", "population-field, chromium"}
    sections = population(prepared)
    assert len(sections) == 2
    bodies = {s.title: s.body for s in sections}
    aiortc = next(b for t, b in bodies.items() if "aiortc" in t)
    chromium = next(b for t, b in bodies.items() if "chromium" in t)
    assert "<td>relay</td><td>50.0 %</td>" in aiortc
    assert "<td>relay</td><td>0.0 %</td>" in chromium
    assert "25.0 %" not in aiortc + chromium
    assert "5 of 5 relayed calls had a direct pair" in aiortc
    assert "had a direct pair" not in chromium
    page = write_report(frame, ["rows"], tmp_path / "r.html").read_text()
    overview = page[page.index('id="overview"') : page.index("</section>")]
    assert "population-field, aiortc" in overview and "population-field, chromium" in overview
    assert "relay 5" in overview and "direct 10" in overview


def test_population_headline_names_the_stack_and_the_race(tmp_path: Path) -> None:
    frame = _stack_rows()
    aiortc = estimate_of_rows(frame[frame["offerer_peer"] == "aiortc"].to_dict("records"))
    assert aiortc.stacks == ["aiortc"] and aiortc.relay_share == 0.5
    assert (aiortc.relayed_checks_known, aiortc.relayed_direct_also_succeeded) == (5, 5)
    text = _render(population_tables("field", aiortc, 0, tmp_path))
    assert "field, aiortc: 10 calls" in text
    assert "5 of 5 relayed calls had a direct pair that also passed its checks" in text
    chromium = estimate_of_rows(frame[frame["offerer_peer"] == "chromium"].to_dict("records"))
    assert chromium.race_note() is None
    assert "field, chromium: 10 calls" in _render(population_tables("field", chromium, 0, tmp_path))


def test_matrix_marks_relays_decided_by_the_race() -> None:
    raced = CallOutcome(connected=True, path="relay", setup_ms=90.0, direct_pair_succeeded=True)
    row = ResultRow(call=raced, scenario="nat-matrix", scenario_hash="", seed=0, run=0,
                    run_id="r", wall_ms=0.0, cell={"nat_a": "open", "nat_b": "open"})  # fmt: skip
    outcomes = matrix_outcomes([row], turn=True)
    assert next(o for o in outcomes if o.nat_a == o.nat_b == "open").raced == 1
    text = _render([matrix_grid(outcomes, ("aiortc", "aiortc"), turn=True)])
    assert "NAT matrix, aiortc" in text and "relay*" in text
    assert "1 relayed call(s) had a direct pair that also passed its checks" in text


def _pair(local: str, remote: str, state: CandidatePair.State) -> CandidatePair:
    def candidate(kind: str, host: str) -> Candidate:
        return Candidate("f", 1, "udp", 1, host, 4000, kind)

    # a pair's local candidate is its socket's (`protocol.local_candidate`)
    protocol = mock.Mock(local_candidate=candidate(local, "192.0.2.1"))
    pair = CandidatePair(protocol, candidate(remote, "198.51.100.1"))
    pair.state = state
    return pair


def test_the_aiortc_agent_sees_a_direct_pair_that_passed_its_checks() -> None:
    succeeded_, failed = CandidatePair.State.SUCCEEDED, CandidatePair.State.FAILED
    connection = mock.Mock()
    connection._check_list = [_pair("relay", "srflx", succeeded_), _pair("host", "srflx", failed)]
    assert direct_pair_succeeded(connection) is False
    connection._check_list.append(_pair("srflx", "prflx", succeeded_))
    assert direct_pair_succeeded(connection) is True
    connection._check_list = []  # closed: nothing to read
    assert direct_pair_succeeded(connection) is None
    assert direct_pair_succeeded(None) is None


def test_the_row_takes_either_sides_report_of_a_direct_pair() -> None:
    def side(role: str, seen: bool | None) -> CallResult:
        return CallResult(role=role, connected=True, direct_pair_succeeded=seen)  # type: ignore[arg-type]

    assert call_row(side("offer", None), side("answer", True)).direct_pair_succeeded is True
    assert call_row(side("offer", False), side("answer", None)).direct_pair_succeeded is False
    row = call_row(side("offer", None), side("answer", None))
    assert row.direct_pair_succeeded is None
    assert "direct_pair_succeeded" not in row.columns()  # a column only rows that know have


def test_report_matrix_names_the_stack_and_the_race(tmp_path: Path) -> None:
    rows = []
    for k, raced in enumerate((True, False, None)):
        call = CallOutcome(connected=True, path="relay", setup_ms=90.0, offerer_peer="aiortc",
                           answerer_peer="aiortc", direct_pair_succeeded=raced)  # fmt: skip
        cell = {"nat_a": "open", "nat_b": "open"}
        row = ResultRow(call=call, scenario="nat-matrix", scenario_hash="", seed=0, run=k,
                        run_id="r", wall_ms=0.0, cell=cell)  # fmt: skip
        rows.append(row.columns())
    page = write_report(pd.DataFrame(rows), ["rows"], tmp_path / "r.html").read_text()
    assert "3 runs by aiortc peers" in page
    assert "1 of 3 relayed calls had a direct pair that also passed its checks" in page

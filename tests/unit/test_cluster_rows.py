"""Rows between a cluster's batch processes and the client: exact, keyed, one per call.

Why: a row crosses two processes and a queue on its way to the results; it must arrive as it
left (every column), and its key must let the client drop the copy a rerun batch sends.
"""

from __future__ import annotations

from pathlib import Path

from simnet.results.schema import CallOutcome, ResultRow
from simnet.run.batch_stream import decode_row, encode_row
from simnet.run.cluster import sweep_batches
from simnet.run.sweep_plan import batches, load_sweep, plan_sweep
from simnet.scenario.model import Scenario

ROOT = Path(__file__).resolve().parents[2]


def test_a_row_survives_the_trip_with_its_key() -> None:
    row = ResultRow(
        call=CallOutcome(connected=True, path="relay", relay_protocol="udp", setup_ms=512.5),
        scenario="s", scenario_hash="h", seed=1, run=0, run_id="abc123", wall_ms=1.0,
        cell={"worker": "host/w1", "point_id": "p1", "repetition": 2},
    )  # fmt: skip
    line = encode_row("p1/2", row)
    assert "\n" not in line
    key, back = decode_row(line)
    assert key == "p1/2" and back.columns() == row.columns()


def test_a_sweeps_batches_carry_each_points_scenario_columns_and_keys(tmp_path: Path) -> None:
    """Workers get the point's scenario already loaded with its overrides (they need no file),
    and every run its point's columns and a key unique in the sweep."""
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(
        f"name: s\nscenario: {ROOT / 'scenarios' / 'direct-lan.yaml'}\n"
        "axes: {call.data_bytes: [1000, 2000]}\nrepeat: 2\n"
    )
    sweep = load_sweep(sweep_file)
    out = sweep_batches(sweep, batches(plan_sweep(sweep), jobs=2))
    assert len(out) == 2  # one batch per point: two repetitions share a network
    keys = [k for b in out for k in b.keys]
    assert len(keys) == len(set(keys)) == 4
    for batch in out:
        scenario = Scenario.model_validate_json(batch.scenario_json)
        assert scenario.call is not None
        assert {r["axis.call.data_bytes"] for r in batch.runs} == {scenario.call.data_bytes}
        assert [r["run"] for r in batch.runs] == [r["repetition"] for r in batch.runs]
        assert all(r["sweep"] == "s" for r in batch.runs)

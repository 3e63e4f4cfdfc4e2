"""Sweep planning is pure, so what a sweep will run, and what a resume skips, is tested here.

Why it matters: a point id is how a stored row is matched to its planned run. If ids changed
with the order of keys, the process or the Python version, a resumed sweep would run everything
again (or skip the wrong runs), and results written months apart could not be joined. The pinned
id below guards that across versions. Resume must drop exactly the (point id, repetition) pairs
already stored for *this* sweep, so that it ends with one row per planned run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from simnet.errors import ScenarioError
from simnet.run.sweep_plan import (
    Point,
    SweepSpec,
    batches,
    load_sweep,
    pending_runs,
    plan_sweep,
    point_id,
)

ROOT = Path(__file__).resolve().parents[2]


def spec(**fields: Any) -> SweepSpec:
    return SweepSpec.model_validate({"scenario": "base.yaml", **fields})


def test_axes_give_their_cartesian_product_in_file_order_with_repetitions_innermost() -> None:
    sweep = spec(
        axes={
            "nats.home.preset": ["full-cone", "symmetric"],
            "call.turn_transports": [["udp"], ["tcp"], ["tls"]],
        },
        repeat=2,
    )
    runs = plan_sweep(sweep)
    assert len(runs) == 2 * 3 * 2
    combos = [r.axes for r in runs if r.repetition == 0]
    assert combos == [
        {"nats.home.preset": "full-cone", "call.turn_transports": ["udp"]},
        {"nats.home.preset": "full-cone", "call.turn_transports": ["tcp"]},
        {"nats.home.preset": "full-cone", "call.turn_transports": ["tls"]},
        {"nats.home.preset": "symmetric", "call.turn_transports": ["udp"]},
        {"nats.home.preset": "symmetric", "call.turn_transports": ["tcp"]},
        {"nats.home.preset": "symmetric", "call.turn_transports": ["tls"]},
    ]
    assert [r.repetition for r in runs[:4]] == [0, 1, 0, 1]
    assert runs[0].point_id == runs[1].point_id != runs[2].point_id
    assert len({r.point_id for r in runs}) == 6
    assert len({r.key for r in runs}) == len(runs)


def test_explicit_points_replace_the_product() -> None:
    points = [
        {"nats.home.preset": "full-cone", "call.ice_policy": "relay"},
        {"nats.home.preset": "symmetric"},
    ]
    runs = plan_sweep(spec(points=points, repeat=3))
    assert [r.axes for r in runs if r.repetition == 0] == points
    assert len(runs) == 6


def test_fixed_overrides_apply_to_every_point_but_are_not_axes() -> None:
    sweep = spec(set={"call.data_bytes": 1000}, axes={"call.ice_policy": ["all", "relay"]})
    runs = plan_sweep(sweep)
    assert all(r.overrides["call.data_bytes"] == 1000 for r in runs)
    assert runs[0].columns() == {
        "point_id": runs[0].point_id,
        "repetition": 0,
        "axis.call.ice_policy": "all",
    }
    # the id covers everything applied: changing a fixed value is a different experiment
    other = plan_sweep(spec(set={"call.data_bytes": 2000}, axes={"call.ice_policy": ["all"]}))
    assert other[0].point_id != runs[0].point_id


def test_point_ids_are_stable_and_independent_of_key_order() -> None:
    a = {"nats.home.preset": "symmetric", "call.turn_transports": ["tcp"]}
    b = {"call.turn_transports": ["tcp"], "nats.home.preset": "symmetric"}
    assert point_id(a) == point_id(b)
    assert point_id(a) != point_id({**a, "call.turn_transports": ["udp"]})
    # pinned: stored results from earlier versions must keep matching their planned runs
    # (sha256 of the canonical JSON '{"call.ice_policy":"relay"}', first 10 hex digits)
    assert point_id({"call.ice_policy": "relay"}) == "e6baeae6b1"
    # and the same in a fresh interpreter (no hash randomisation, no per-process state)
    code = (
        "from simnet.run.sweep_plan import point_id; print(point_id({'call.ice_policy': 'relay'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "e6baeae6b1"


def test_overrides_round_trip_as_set_arguments() -> None:
    [run] = plan_sweep(spec(points=[{"call.turn_transports": ["tcp"], "nats.a.hairpin": False}]))
    assert run.set_args() == ['call.turn_transports=["tcp"]', "nats.a.hairpin=false"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "nothing varies"),
        ({"axes": {"a.b": [1]}, "points": [{"a.b": 1}]}, "not both"),
        ({"axes": {"a.b": []}}, "at least 1"),
        ({"axes": {"a.b": [1, 1]}}, "twice"),
        ({"axes": {"a..b": [1]}}, "pattern"),
        ({"axes": {"a.b": [1]}, "set": {"a.b": 2}}, "both fixed"),
        ({"axes": {"a.b": [1]}, "repeat": 0}, "greater than or equal"),
        ({"axes": {"a.b": [1]}, "axis": {}}, "Extra inputs"),
        ({"points": [{}]}, "empty"),
    ],
)
def test_invalid_sweeps_are_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec(**fields)


def test_a_point_listed_twice_is_an_error() -> None:
    with pytest.raises(ScenarioError, match="listed twice"):
        plan_sweep(spec(points=[{"a.b": 1}, {"a.b": 1}]))


def test_load_resolves_the_scenario_next_to_the_sweep_and_names_it_after_the_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "s.yaml").write_text(
        "scenario: ../scenarios/x.yaml\naxes: {call.ice_policy: [all]}\n"
    )
    sweep = load_sweep(tmp_path / "s.yaml")
    assert sweep.name == "s"
    assert sweep.scenario == (tmp_path.parent / "scenarios" / "x.yaml").resolve()
    (tmp_path / "bad.yaml").write_text("scenario: x.yaml\naxes: {call.ice_policy: []}\nrepat: 2\n")
    with pytest.raises(ScenarioError) as info:
        load_sweep(tmp_path / "bad.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'bad.yaml'}: invalid sweep")
    assert "repat" in str(info.value) and "axes.call.ice_policy" in str(info.value)
    with pytest.raises(ScenarioError, match="no such sweep file"):
        load_sweep(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", ["nat-matrix.yaml", "turn-vs-direct.yaml"])
def test_shipped_sweeps_plan_and_every_point_is_a_valid_scenario(name: str) -> None:
    from simnet.run.sweep import check_points

    sweep = load_sweep(ROOT / "benchmarks" / "sweeps" / name)
    runs = plan_sweep(sweep)
    check_points(sweep, runs)  # raises ScenarioError naming the point if one is invalid
    expected = {"nat-matrix.yaml": 25, "turn-vs-direct.yaml": 6}[name]
    assert len({r.point_id for r in runs}) == expected


# --- resume -----------------------------------------------------------------------------------


def _rows(runs: list[Point], sweep: str = "s") -> pd.DataFrame:
    return pd.DataFrame(
        [{"sweep": sweep, "point_id": r.point_id, "repetition": r.repetition} for r in runs]
    )


def test_resume_skips_exactly_the_stored_runs() -> None:
    planned = plan_sweep(spec(name="s", axes={"call.ice_policy": ["all", "relay"]}, repeat=3))
    stored = [planned[0], planned[2], planned[4]]
    todo = pending_runs(planned, _rows(stored), "s")
    assert [r.key for r in todo] == [r.key for r in planned if r not in stored]
    assert pending_runs(planned, _rows(planned), "s") == []
    assert pending_runs(planned, pd.DataFrame(), "s") == planned


def test_resume_ignores_other_sweeps_and_rows_without_sweep_columns() -> None:
    planned = plan_sweep(spec(name="s", axes={"call.ice_policy": ["all"]}, repeat=2))
    assert pending_runs(planned, _rows(planned, sweep="other"), "s") == planned
    plain_runs = pd.DataFrame([{"scenario": "x", "run": 0}])  # `simnet run` rows, same dir
    assert pending_runs(planned, plain_runs, "s") == planned
    mixed = pd.concat([plain_runs, _rows(planned[:1])], ignore_index=True)
    assert [r.key for r in pending_runs(planned, mixed, "s")] == [planned[1].key]


def test_resume_reads_repetitions_as_stored_by_parquet() -> None:
    """Parquet may give repetitions back as floats (a column with gaps) or numpy ints."""
    planned = plan_sweep(spec(name="s", axes={"call.ice_policy": ["all"]}, repeat=2))
    frame = _rows(planned[:1]).astype({"repetition": "float64"})
    assert [r.key for r in pending_runs(planned, frame, "s")] == [planned[1].key]
    assert json.loads(json.dumps(planned[0].columns()))["repetition"] == 0


def test_batches_keep_a_point_in_one_network_unless_jobs_would_idle() -> None:
    runs = plan_sweep(spec(axes={"call.ice_policy": ["all", "relay"]}, repeat=4))
    assert [len(b) for b in batches(runs, 2)] == [4, 4]
    assert [len(b) for b in batches(runs, 4)] == [2, 2, 2, 2]
    assert [len(b) for b in batches(runs[:3], 4)] == [1, 1, 1]
    assert all(len({r.point_id for r in b}) == 1 for b in batches(runs, 8))
    assert sorted(r.key for b in batches(runs, 3) for r in b) == sorted(r.key for r in runs)
    assert batches([], 2) == []

"""A sweep file is bounded and every point checked before the first run.

Why: a sweep runs for hours, and "run again with --resume" is its answer to a failed point; a
point that can never be built (a LAN too small for its hosts) must fail before anything is
built, not at point 2 with advice that cannot help. And the product of the axes is counted,
not made: 25 axes of two values are 33 million points, which ran out of memory (exit 70).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simnet.errors import ScenarioError
from simnet.run.sweep import check_points
from simnet.run.sweep_plan import (
    MAX_POINT_VALUES,
    MAX_POINTS,
    MAX_RUNS,
    SweepSpec,
    load_sweep,
    plan_sweep,
)

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "scenarios" / "home-vs-carrier.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"scenario: {BASE}\n{text}")
    return path


def refused(path: Path) -> str:
    with pytest.raises(ScenarioError) as info:
        sweep = load_sweep(path)
        check_points(sweep, plan_sweep(sweep), str(path))
    assert info.value.message.startswith(f"{path}: "), info.value.message
    return info.value.message


def test_the_point_count_is_computed_before_the_product_is_made(tmp_path: Path) -> None:
    axes = "".join(f"  call.x{i}: [1, 2]\n" for i in range(25))
    message = refused(write(tmp_path, f"axes:\n{axes}"))
    assert f"33,554,432 points (25 axes); a sweep has at most {MAX_POINTS:,}" in message


def test_the_count_names_each_axis_size_when_they_are_few(tmp_path: Path) -> None:
    values = ", ".join(str(i) for i in range(101))
    axes = f"  call.a: [{values}]\n  call.b: [{values}]\n"
    assert "10,201 points (101 x 101)" in refused(write(tmp_path, f"axes:\n{axes}"))


def test_points_times_repeat_are_bounded(tmp_path: Path) -> None:
    values = ", ".join(str(i) for i in range(20))
    message = refused(write(tmp_path, f"axes: {{call.x: [{values}]}}\nrepeat: 10000\n"))
    assert (
        f"20 points x repeat 10,000 = 200,000 runs; a sweep makes at most {MAX_RUNS:,}" in message
    )


def test_a_large_value_in_set_counts_once_per_point(tmp_path: Path) -> None:
    """`set` is validated in every point: 100 points of a 20,001-value `set` (and one axis
    value each) are 2,000,200 values."""
    big = "[" + ", ".join(["1"] * 20_000) + "]"
    values = ", ".join(str(i) for i in range(100))
    message = refused(write(tmp_path, f"set: {{call.big: {big}}}\naxes: {{call.x: [{values}]}}\n"))
    assert f"at most {MAX_POINT_VALUES:,}" in message and "2,000,200 values" in message


def test_a_nul_in_the_scenario_path_is_a_field_error(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text('scenario: "base\\0.yaml"\naxes: {call.ice_policy: [all]}\n')
    assert "scenario: a path cannot hold a NUL character" in refused(path)


def test_a_missing_base_scenario_is_named_before_any_point(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("scenario: nowhere.yaml\naxes: {call.ice_policy: [all]}\n")
    message = refused(path)
    assert message.startswith(f"{path}: scenario: {tmp_path / 'nowhere.yaml'}: no such")


def test_a_point_whose_network_cannot_be_planned_fails_before_anything_runs(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "axes:\n  nats.home.lan: [10.0.0.0/24, 10.0.0.0/29]\n")
    message = refused(path)
    assert message.startswith(f'{path}: point 2 of 2 (nats.home.lan="10.0.0.0/29"): ')
    assert "10.0.0.0/29 is exhausted" in message and "--resume" not in message


def test_a_point_with_an_invalid_field_names_the_field(tmp_path: Path) -> None:
    message = refused(write(tmp_path, "axes: {nats.home.preset: [full-cone, bogus]}\n"))
    assert 'point 2 of 2 (nats.home.preset="bogus")' in message
    assert "nats.home.preset" in message.splitlines()[-1]


def test_a_long_point_is_shown_cut(tmp_path: Path) -> None:
    long = "x" * 5000
    message = refused(write(tmp_path, f"axes: {{nats.home.preset: [full-cone, {long}]}}\n"))
    assert len(message.splitlines()[0]) < 600


def test_the_shipped_sweeps_pass_every_check() -> None:
    for name in ("nat-matrix.yaml", "turn-vs-direct.yaml"):
        path = ROOT / "benchmarks" / "sweeps" / name
        sweep = load_sweep(path)
        check_points(sweep, plan_sweep(sweep), str(path))


def test_spec_bounds_hold_for_sweeps_made_in_python() -> None:
    with pytest.raises(ValueError, match="points"):
        SweepSpec.model_validate(
            {"scenario": "b.yaml", "axes": {f"call.x{i}": [1, 2] for i in range(20)}}
        )

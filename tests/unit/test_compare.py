"""Baseline comparison: regressions fail the build, noise does not.

Why: `simnet compare` gates pull requests. A gate that fires on run-to-run noise gets disabled; one
that misses a 100 ms set-up regression or a success rate falling from 100 % to 60 % is worse than
none. Synthetic result sets with known shifts (seeded, so every run of this file sees the same
data) pin both sides, end to end through Parquet files and the exit code.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from simnet.cli import main
from simnet.present.compare import markdown_comment
from simnet.results.compare import DEFAULT_MIN_EFFECT, METRIC_SPECS, Comparison, MinEffect, compare
from simnet.results.compare_files import bigger_is_better_path

RUNS = 30
FAST = 499  # bootstrap resamples: intervals only feed the display here


def cell_runs(
    scenario: str,
    seed: int,
    *,
    n: int = RUNS,
    nat: tuple[str, str] | None = None,
    setup_shift_ms: float = 0.0,
    setup_scale: float = 1.0,
    connected: int | None = None,
    relayed: int = 0,
) -> pd.DataFrame:
    """`n` rows of one cell shaped like simnet's: log-normal timings, exact success/relay counts."""
    rng = np.random.default_rng(seed)
    ok = np.arange(n) < (n if connected is None else connected)
    relay = np.arange(n) < relayed
    frame = pd.DataFrame(
        {
            "scenario": scenario,
            "scenario_hash": "0123456789ab",
            "run": np.arange(n),
            "connected": ok,
            "path": [
                ("relay" if r else "direct") if o else None for o, r in zip(ok, relay, strict=True)
            ],
            "error": [None if o else "ice-failed" for o in ok],
            "setup_ms": 120 * rng.lognormal(0, 0.08, n) * setup_scale + setup_shift_ms,
            "ice_connect_ms": 40 * rng.lognormal(0, 0.1, n),
            "dc_goodput_mbps": 50 * rng.lognormal(0, 0.1, n),
            "rtt_ms": 3 * rng.lognormal(0, 0.2, n),
            "aiortc_version": "1.9.0",
        }
    )
    for column in ("setup_ms", "ice_connect_ms", "dc_goodput_mbps", "rtt_ms"):
        frame.loc[~ok, column] = None  # a failed call has no set-up time, as in call_row
    if nat is not None:
        frame["nat_a"], frame["nat_b"] = nat
    return frame


def result_set(seed: int, **changes: dict[str, Any]) -> pd.DataFrame:
    """Three cells, as a `simnet run` plus part of a `simnet matrix` would give; `changes` maps a
    cell name to `cell_runs` overrides."""
    cells: dict[str, dict[str, Any]] = {
        "home": {"scenario": "home-vs-carrier"},
        "sym": {"scenario": "nat-matrix", "nat": ("symmetric", "symmetric"), "relayed": RUNS},
        "open": {"scenario": "nat-matrix", "nat": ("open", "full-cone")},
    }
    frames = [
        cell_runs(seed=seed * 100 + i, **{**spec, **changes.get(name, {})})
        for i, (name, spec) in enumerate(cells.items())
    ]
    return pd.concat(frames, ignore_index=True)


def compare_command(
    baseline: Path,
    current: Path,
    as_json: bool,
    markdown: bool,
    github_benchmark: Path | None,
    alpha: float,
) -> int:
    """`simnet compare BASELINE CURRENT ...` as the console script runs it; its exit code."""
    argv = ["simnet", "compare", str(baseline), str(current), "--alpha", str(alpha)]
    argv += ["--json"] * as_json + ["--markdown"] * markdown
    if github_benchmark is not None:
        argv += ["--github-benchmark", str(github_benchmark)]
    with mock.patch.object(sys, "argv", argv), pytest.raises(SystemExit) as exited:
        main()
    assert isinstance(exited.value.code, int)
    return exited.value.code


def run_compare(baseline: pd.DataFrame, current: pd.DataFrame) -> Comparison:
    return compare(baseline, current, n_resamples=FAST)


def write(frame: pd.DataFrame, directory: Path) -> Path:
    """Like the store: one Parquet file per run, in a directory."""
    directory.mkdir(parents=True)
    for i, (_, group) in enumerate(frame.groupby(["scenario", frame.index // 10])):
        group.to_parquet(directory / f"part-{i:03d}.parquet", index=False)
    return directory


def verdicts(comparison: Comparison) -> dict[tuple[str, str], str]:
    return {(c.cell, c.metric): c.verdict for c in comparison.changes}


def test_same_distribution_is_not_a_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline, current = result_set(1), result_set(2)
    comparison = run_compare(baseline, current)
    assert comparison.regressions == []
    assert len(comparison.changes) == 3 * len(METRIC_SPECS)
    assert {c.verdict for c in comparison.changes} == {"unchanged"}

    code = compare_command(
        write(baseline, tmp_path / "baseline"), write(current, tmp_path / "current"),
        as_json=False, markdown=False, github_benchmark=None, alpha=0.01,
    )  # fmt: skip
    assert code == 0
    assert "no significant regression" in capsys.readouterr().out


def test_setup_shift_of_100_ms_in_one_cell_fails_and_names_the_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = result_set(1)
    current = result_set(2, home={"setup_shift_ms": 100.0})
    comparison = run_compare(baseline, current)
    assert comparison.regressions == ["home-vs-carrier"]
    regressed = comparison.with_verdict("regressed")
    assert [(c.cell, c.metric) for c in regressed] == [("home-vs-carrier", "setup_ms")]
    change = regressed[0]
    assert change.change == pytest.approx(100, abs=15)
    assert change.p_value is not None and change.p_value < 1e-6

    code = compare_command(
        write(baseline, tmp_path / "b"), write(current, tmp_path / "c"),
        as_json=False, markdown=False, github_benchmark=None, alpha=0.01,
    )  # fmt: skip
    assert code == 1
    out = capsys.readouterr().out
    assert "regression" in out and "home-vs-carrier" in out and "set-up" in out


def test_improvement_is_reported_and_passes() -> None:
    comparison = run_compare(result_set(1), result_set(2, home={"setup_shift_ms": -60.0}))
    assert comparison.regressions == []
    assert verdicts(comparison)[("home-vs-carrier", "setup_ms")] == "improved"


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_noise_sized_shift_is_not_a_regression(seed: int) -> None:
    # +2 % on every cell and n = 30 per side: possibly significant, never beyond 10 % / 5 ms.
    shifted = {name: {"setup_scale": 1.02} for name in ("home", "sym", "open")}
    comparison = run_compare(result_set(1), result_set(seed, **shifted))
    assert comparison.regressions == []
    for c in comparison.changes:
        if c.metric == "setup_ms":
            assert c.verdict == "unchanged"


def test_significant_but_small_shift_is_not_a_regression() -> None:
    # With 300 runs a side even a 4 % slow-down is significant; it is still below the 10 % floor.
    many = {"n": 300}
    comparison = run_compare(
        result_set(1, home=many), result_set(2, home={**many, "setup_scale": 1.04})
    )
    change = next(
        c for c in comparison.changes if (c.cell, c.metric) == ("home-vs-carrier", "setup_ms")
    )
    assert change.p_value is not None and change.p_value < 0.01
    assert change.verdict == "unchanged" and "below the minimum effect" in change.note
    assert comparison.regressions == []


def test_large_shift_without_enough_runs_is_insufficient_not_unchanged() -> None:
    few = {"n": 3}
    comparison = run_compare(
        result_set(1, home=few), result_set(2, home={**few, "setup_shift_ms": 500.0})
    )
    home = [c for c in comparison.changes if c.cell == "home-vs-carrier"]
    assert {c.verdict for c in home} == {"insufficient-data"}
    assert "3 vs 3 runs cannot reach p < 0.01" in home[0].note
    assert comparison.regressions == []


def test_success_rate_drop_from_100_to_60_percent_is_a_regression() -> None:
    comparison = run_compare(result_set(1), result_set(2, open={"connected": 18}))
    label = "nat-matrix open->full-cone"
    assert comparison.regressions == [label]
    change = next(c for c in comparison.changes if (c.cell, c.metric) == (label, "success_rate"))
    assert change.verdict == "regressed"
    assert change.baseline == 1.0 and change.current == pytest.approx(0.6)
    assert (change.baseline_n, change.current_n) == (30, 30)
    assert change.p_value == pytest.approx(1.236e-4, rel=1e-3)  # Fisher exact, two-sided


def test_small_success_rate_drop_is_not_a_regression() -> None:
    comparison = run_compare(result_set(1), result_set(2, open={"connected": 28}))
    assert comparison.regressions == []


def test_turn_fallback_rising_is_a_regression() -> None:
    comparison = run_compare(result_set(1), result_set(2, home={"relayed": 15}))
    assert comparison.regressions == ["home-vs-carrier"]
    assert verdicts(comparison)[("home-vs-carrier", "relay_rate")] == "regressed"


def test_min_effect_can_be_tuned() -> None:
    baseline, current = result_set(1), result_set(2, home={"setup_shift_ms": 100.0})
    lenient = compare(
        baseline, current, min_effect={"setup_ms": MinEffect(1.0, 0.0)}, n_resamples=FAST
    )
    assert lenient.regressions == []
    assert lenient.min_effect["ice_connect_ms"] == DEFAULT_MIN_EFFECT["ice_connect_ms"]
    with pytest.raises(ValueError, match="unknown metric"):
        compare(baseline, current, min_effect={"latency": MinEffect()})
    with pytest.raises(ValueError, match="alpha"):
        compare(baseline, current, alpha=0)


def test_unmatched_cells_axes_and_environment_are_reported() -> None:
    baseline = result_set(1).assign(**{"axis.loss": 0.0})
    current = result_set(2).assign(**{"axis.loss": 0.0})
    current.loc[current["scenario"] == "home-vs-carrier", "axis.loss"] = 0.05
    current["aiortc_version"] = "1.10.0"
    current.loc[current["scenario"] == "nat-matrix", "scenario_hash"] = "ba9876543210"
    comparison = run_compare(baseline, current)
    assert comparison.cell_columns == ("scenario", "nat_a", "nat_b", "axis.loss")
    assert comparison.only_in_baseline == ("home-vs-carrier axis.loss=0.0",)
    assert comparison.only_in_current == ("home-vs-carrier axis.loss=0.05",)
    assert comparison.notes == (
        "aiortc_version: 1.9.0 -> 1.10.0",
        "scenario definition changed (0123456789ab -> ba9876543210) in "
        "nat-matrix open->full-cone axis.loss=0.0, nat-matrix symmetric->symmetric axis.loss=0.0",
    )
    markdown = markdown_comment(comparison)
    assert "only in the baseline" in markdown and "aiortc_version" in markdown


def test_markdown_is_a_well_formed_pr_comment() -> None:
    comparison = run_compare(result_set(1), result_set(2, home={"setup_shift_ms": 100.0}))
    markdown = markdown_comment(comparison)
    assert markdown.startswith("## :x: simnet benchmark: 1 regression(s) in 1 cell(s)")
    assert "### Regressions" in markdown and "p < 0.01" in markdown
    assert markdown.count("<details>") == markdown.count("</details>") == 1
    tables = [line for line in markdown.splitlines() if line.startswith("|")]
    assert tables and all(line.endswith("|") for line in tables)
    # Every row of a table has as many cells as its header (no stray pipes in labels).
    widths = {len(line.replace("\\|", "").split("|")) for line in tables}
    assert len(widths) <= 2  # the regressions table (6 columns) and the full one (7)
    calm = markdown_comment(run_compare(result_set(1), result_set(2)))
    assert calm.startswith("## :white_check_mark: simnet benchmark: no significant regression")
    assert "### Regressions" not in calm


def test_json_is_strict_and_complete() -> None:
    comparison = run_compare(result_set(1, home={"n": 3}), result_set(2, home={"n": 1}))
    text = json.dumps(comparison.as_json())

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(text, parse_constant=no_constants)
    assert data["alpha"] == 0.01 and data["regressions"] == []
    assert sum(data["counts"].values()) == len(data["changes"]) == 3 * len(METRIC_SPECS)
    first = data["changes"][0]
    for key in ("cell", "key", "metric", "unit", "baseline", "current", "change", "change_pct",
                "p_value", "verdict", "note", "baseline_n", "current_n"):  # fmt: skip
        assert key in first
    assert first["key"] == {"scenario": "home-vs-carrier", "nat_a": None, "nat_b": None}
    # One current run: an estimate without an interval, serialised as null rather than NaN.
    single = next(c for c in data["changes"] if c["metric"] == "setup_ms" and c["current_n"] == 1)
    assert single["current_low"] is None and single["verdict"] == "insufficient-data"


def test_github_benchmark_entries_split_by_direction(tmp_path: Path) -> None:
    comparison = run_compare(result_set(1), result_set(2, open={"connected": 18}))
    smaller = comparison.as_github_benchmark()
    bigger = comparison.as_github_benchmark(bigger_is_better=True)
    assert {e["name"].rsplit(" ", 1)[1] for e in smaller} == {
        "setup_ms", "ice_connect_ms", "rtt_ms", "relay_rate",
    }  # fmt: skip
    assert {e["name"].rsplit(" ", 1)[1] for e in bigger} == {"dc_goodput_mbps", "success_rate"}
    names = [e["name"] for e in smaller + bigger]
    assert len(names) == len(set(names))
    for entry in smaller + bigger:
        assert set(entry) <= {"name", "unit", "value", "range", "extra"}
        assert isinstance(entry["value"], float) and math.isfinite(entry["value"])
        assert all(isinstance(entry[k], str) for k in ("name", "unit", "range", "extra"))
    success = next(e for e in bigger if e["name"] == "nat-matrix open->full-cone success_rate")
    assert (success["unit"], success["value"]) == ("%", 60.0)
    assert "verdict=regressed" in success["extra"]

    baseline = write(result_set(1), tmp_path / "baseline")
    current = write(result_set(2), tmp_path / "current")
    bench = tmp_path / "out" / "bench.json"
    code = compare_command(baseline, current, False, False, bench, 0.01)
    assert code == 0
    assert bigger_is_better_path(bench) == tmp_path / "out" / "bench-bigger.json"
    assert len(json.loads(bench.read_text())) == 3 * 4
    assert len(json.loads(bigger_is_better_path(bench).read_text())) == 3 * 2


def test_command_outputs_json_and_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = write(result_set(1), tmp_path / "baseline")
    current = write(result_set(2, home={"setup_shift_ms": 100.0}), tmp_path / "current")
    assert compare_command(baseline, current, True, False, None, 0.01) == 1
    assert json.loads(capsys.readouterr().out)["regressions"] == ["home-vs-carrier"]
    files = sorted(current.glob("*.parquet"))  # single files work as well as directories
    assert compare_command(baseline, files[0], False, True, None, 0.01) == 1
    out = capsys.readouterr().out
    assert out.startswith("## :x: simnet benchmark") and "home-vs-carrier" in out


def test_command_without_results_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = write(result_set(1), tmp_path / "results")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert compare_command(results, empty, False, False, None, 0.01) == 2
    assert "current" in capsys.readouterr().err
    assert compare_command(tmp_path / "missing", results, False, False, None, 0.01) == 2
    assert "does not exist" in capsys.readouterr().err
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    assert compare_command(results, junk, False, False, None, 0.01) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert compare_command(results, results, False, False, None, 1.5) == 2
    other = write(result_set(1).assign(scenario="elsewhere"), tmp_path / "other")
    assert compare_command(results, other, False, False, None, 0.01) == 2
    assert "no cell is in both" in capsys.readouterr().err


def _strict_command(baseline: Path, current: Path, *options: str) -> int:
    argv = ["simnet", "compare", str(baseline), str(current), *options]
    with mock.patch.object(sys, "argv", argv), pytest.raises(SystemExit) as exited:
        main()
    assert isinstance(exited.value.code, int)
    return exited.value.code


def test_too_few_runs_pass_by_default_and_fail_with_strict_or_min_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """3 vs 3 runs cannot reach p < 0.01: a quick look passes (exit 0), a CI gate with
    --strict (or --min-runs above 3) must not (exit 1), and says which cells lack runs."""
    few = {name: {"n": 3} for name in ("home", "sym", "open")}
    baseline = write(result_set(1, **few), tmp_path / "baseline")
    current = write(result_set(2, **few), tmp_path / "current")
    assert _strict_command(baseline, current) == 0
    assert "not enough data" in capsys.readouterr().out
    assert _strict_command(baseline, current, "--strict") == 1
    out = capsys.readouterr().out
    assert "not enough runs" in out and "home-vs-carrier" in out
    assert "no significant regression" not in out
    assert _strict_command(baseline, current, "--min-runs", "4") == 1
    assert "3 vs 3 runs, minimum 4" in capsys.readouterr().out
    assert _strict_command(baseline, current, "--min-runs", "3") == 0
    capsys.readouterr()
    assert _strict_command(baseline, current, "--strict", "--json") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["failed"] is True and len(data["short_of_runs"]) == 3


def test_strict_passes_with_enough_runs_and_fails_on_a_missing_cell(tmp_path: Path) -> None:
    baseline, current = result_set(1), result_set(2)
    strict = replace(run_compare(baseline, current), strict=True)
    assert strict.short_of_runs == [] and not strict.failed
    without_home = current[current["scenario"] != "home-vs-carrier"]
    gone = replace(run_compare(baseline, without_home), strict=True)
    assert gone.short_of_runs == ["home-vs-carrier: no current runs"] and gone.failed
    assert not replace(gone, strict=False).failed  # a missing cell alone is only reported


def test_success_is_connected_without_error_as_run_judges_it() -> None:
    """Two calls that connected and then timed out on their data channel are failures for
    compare, as for `simnet run`: 10/10 -> 8/10, and their times count nowhere."""
    baseline = cell_runs("s", 1, n=10)
    current = cell_runs("s", 2, n=10)
    current.loc[:1, "error"] = "timeout:datachannel"  # connected stays True, path "direct"
    assert current["connected"].all()
    changes = {c.metric: c for c in run_compare(baseline, current).changes}
    assert (changes["success_rate"].baseline, changes["success_rate"].current) == (1.0, 0.8)
    assert changes["setup_ms"].current_n == 8
    assert changes["relay_rate"].current_n == 8

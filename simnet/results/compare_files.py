"""`simnet compare`'s library part: two result sets on disk loaded, checked and compared, and the
github-action-benchmark files written from the comparison.

A path that holds no results, two sets without a cell in common, or an invalid significance
level is an `UnusableResults` error (exit 2): a gate that compared nothing must not pass.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from simnet.errors import SimnetError
from simnet.results.compare import Comparison, compare
from simnet.results.outputs import check_output_file, write_output
from simnet.results.store import UnusableResults, load


def load_comparison(
    baseline: Path, current: Path, alpha: float, strict: bool = False, min_runs: int = 0
) -> Comparison:
    """Both result sets loaded and compared at significance level `alpha`; with `strict` or
    `min_runs`, a cell short of runs fails the gate (`Comparison.short_of_runs`)."""
    if not 0 < alpha < 1:
        raise UnusableResults(
            f"--alpha must be between 0 and 1, got {alpha:g}", fix="e.g. --alpha 0.01"
        )
    frames: list[pd.DataFrame] = []
    for role, path in (("baseline", baseline), ("current", current)):
        fix = f"point at a directory of simnet results (e.g. written by `simnet run --out {path}`)"
        if not path.exists():
            raise UnusableResults(f"{role} {path} does not exist", fix=fix)
        try:
            frame = load(path)
        except SimnetError:
            raise  # names the file and what is wrong with it
        except (OSError, ValueError) as exc:
            raise UnusableResults(
                f"{role} {path} cannot be read as Parquet results: {exc}", fix=fix
            ) from None
        if frame.empty or "connected" not in frame.columns:
            raise UnusableResults(
                f"{role} {path} holds no simnet results (no *.parquet result rows)", fix=fix
            )
        frames.append(frame)
    comparison = compare(frames[0], frames[1], alpha=alpha)
    if not comparison.changes:
        # Passing a gate that compared nothing would hide a misconfigured baseline.
        raise UnusableResults(
            f"no cell is in both {baseline} and {current} (baseline: "
            f"{', '.join(comparison.only_in_baseline)}; current: "
            f"{', '.join(comparison.only_in_current)})",
            fix="compare results of the same scenarios, matrix cells and sweep axes",
        )
    return dataclasses.replace(comparison, strict=strict, min_runs=min_runs)


def bigger_is_better_path(path: Path) -> Path:
    """Where the bigger-is-better half of `--github-benchmark PATH` goes."""
    return path.with_name(f"{path.stem}-bigger{path.suffix or '.json'}")


def write_github_benchmark(comparison: Comparison, path: Path) -> Path:
    """The smaller-is-better entries to `path`, the bigger-is-better ones beside it
    (`bench.json` -> `bench-bigger.json`), one file per tool of the action; returns the
    second file's path. Both paths are checked (`check_output_file`) before either is written."""
    bigger = bigger_is_better_path(path)
    for target in (path, bigger):
        check_output_file(target, "--github-benchmark")
    for target, direction in ((path, False), (bigger, True)):
        entries = comparison.as_github_benchmark(bigger_is_better=direction)
        write_output(target, json.dumps(entries, indent=2) + "\n", "--github-benchmark")
    return bigger

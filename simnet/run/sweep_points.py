"""What each point of a sweep measured so far, from the rows stored in its results directory:
its runs, their outcomes, median set-up time and goodput (what `simnet sweep` shows per point).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simnet.quantile import quantile
from simnet.results import load
from simnet.run.sweep_plan import Point, SweepSpec


@dataclass(frozen=True)
class PointResult:
    """One point's stored runs: how many, by outcome (`direct`, `relay`, `failed`), medians."""

    point: Point
    runs: int
    outcomes: dict[str, int]
    setup_ms: float | None
    goodput_mbps: float | None


def _median(values: Iterable[Any]) -> float | None:
    clean = [float(v) for v in values if v is not None and v == v]
    return quantile(clean, 0.5)


def point_results(sweep: SweepSpec, planned: list[Point], out_dir: Path) -> list[PointResult]:
    """Per planned point (its first repetition stands for it), the rows of this sweep in
    `out_dir`."""
    frame = load(out_dir)
    if "sweep" in frame.columns:
        frame = frame[frame["sweep"] == sweep.name]
    results = []
    for point in (p for p in planned if p.repetition == 0):
        runs = (
            frame[frame["point_id"] == point.point_id].to_dict("records")
            if "point_id" in frame.columns
            else []
        )
        outcomes: dict[str, int] = {}
        for run in runs:
            key = str(run.get("path")) if run.get("connected") else "failed"
            outcomes[key] = outcomes.get(key, 0) + 1
        results.append(
            PointResult(
                point,
                len(runs),
                outcomes,
                _median(r.get("setup_ms") for r in runs),
                _median(r.get("dc_goodput_mbps") for r in runs),
            )
        )
    return results

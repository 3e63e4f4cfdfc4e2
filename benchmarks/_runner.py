"""The shared tail of every benchmark script: root check, errors and signals, JSON or tables.

Benchmarks are scripts (`python benchmarks/NAME.py`), so this sibling module is imported by name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rich.console import Console

from simnet.errors import SimnetError
from simnet.quantile import quantile
from simnet.signals import Terminated

SUMMARY_KEYS = ("median", "p10", "p25", "p75", "p90", "iqr", "mean", "min", "max")


def describe(values: Sequence[float], digits: int = 3) -> dict[str, float | int | None]:
    """n and the sample's summary (percentiles by `simnet.quantile`); None everywhere when
    empty, so a benchmark's JSON keeps one shape whatever was measured."""
    if not values:
        return {"n": 0, **dict.fromkeys(SUMMARY_KEYS)}
    a = np.asarray(values, dtype=float)
    p10, p25, p50, p75, p90 = (quantile(a, q) or 0.0 for q in (0.10, 0.25, 0.50, 0.75, 0.90))
    figures = {
        "median": p50,
        "p10": p10,
        "p25": p25,
        "p75": p75,
        "p90": p90,
        "iqr": p75 - p25,
        "mean": a.mean(),
        "min": a.min(),
        "max": a.max(),
    }
    return {"n": len(a), **{k: round(float(v), digits) for k, v in figures.items()}}


class BenchmarkError(RuntimeError):
    """The benchmark could not produce a trustworthy figure (e.g. a network did not work)."""


def run_benchmark(
    measure: Callable[[], dict[str, Any]],
    show: Callable[[dict[str, Any]], None],
    *,
    as_json: bool,
    log: Console,
) -> int:
    """Run `measure`, print its result, and turn failures and signals into exit codes."""
    if os.geteuid() != 0:
        log.print("[red]needs root: it creates network namespaces[/red]")
        return 2
    try:
        result = measure()
    except (BenchmarkError, SimnetError) as exc:
        log.print("benchmark failed:", style="bold red")
        log.print(str(exc), markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        log.print("interrupted; everything the benchmark built was removed", style="yellow")
        return 130
    except Terminated as exc:
        log.print(f"terminated ({exc}); everything the benchmark built was removed", style="yellow")
        return 143
    if as_json:
        print(json.dumps(result))
    else:
        show(result)
    return 0

"""`simnet sweep`'s presentation: a progress bar while it runs, one table line per point after.

The job is `simnet.run.sweep`, which returns a `SweepSummary` and writes the rows, and
`simnet.run.sweep_points` says what each point measured; this module only shows them (imported
by the CLI alone).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from simnet import show
from simnet.run.sweep import ProgressSink, SweepSummary
from simnet.run.sweep_plan import Point, SweepSpec
from simnet.run.sweep_points import PointResult


@contextlib.contextmanager
def progress_bar(console: Console) -> Iterator[ProgressSink]:
    """A transient bar on `console`, fed by `run_sweep`'s progress callback."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task: TaskID | None = None

        def update(what: str, done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = progress.add_task(show.markup_safe(what), total=total)
            progress.update(task, completed=done, total=total)

        yield update


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return value if isinstance(value, str) else json.dumps(value)


def print_sweep(
    sweep: SweepSpec,
    planned: list[Point],
    results: list[PointResult],
    summary: SweepSummary,
    jobs: int,
) -> None:
    """One table line per point (its axes, runs, outcomes, medians), then what the sweep did;
    each error, and a missing run's hint, on stderr. Calls that failed are results, not
    errors: the table shows them."""
    out, err = Console(), Console(stderr=True)
    table = Table(
        title=show.text(
            f"sweep {sweep.name}: {summary.planned} runs planned, results in {summary.out_dir}/"
        )
    )
    paths = list(dict.fromkeys(path for p in planned for path in p.axes))
    for column in ("point", *paths, "runs", "outcome", "setup ms", "Mbit/s"):
        table.add_column(show.text(column), overflow="fold")
    for result in results:
        point = result.point
        cells = (
            point.point_id,
            *(_show(point.axes.get(p, "")) for p in paths),
            f"{result.runs}/{sweep.repeat}",
            ", ".join(f"{k} {n}" for k, n in sorted(result.outcomes.items())) or "-",
            "-" if result.setup_ms is None else f"{result.setup_ms:.0f}",
            "-" if result.goodput_mbps is None else f"{result.goodput_mbps:.1f}",
        )
        table.add_row(*map(show.text, cells))
    out.print(table)
    out.print(
        f"{summary.written} run(s) now, {summary.skipped} already stored, "
        f"{summary.missing} missing; {summary.elapsed_s:.1f} s with {jobs} job(s)"
    )
    for line in summary.errors:
        err.print(show.text(("failed:", "red"), f" {line}"), highlight=False)
    if not summary.complete:
        err.print("some runs are missing: run the sweep again with --resume to complete it")


def say_interrupted(signal_name: str | None = None) -> None:
    """An interrupted sweep keeps its rows: say so, and that resuming completes it."""
    err = Console(stderr=True)
    if signal_name is None:
        err.print("interrupted; rows of finished runs are kept: resume to complete the sweep")
    else:
        err.print(show.text(f"terminated ({signal_name}); rows of finished runs are kept: resume"))

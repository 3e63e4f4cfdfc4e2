"""`simnet sweep`'s presentation: a progress bar while it runs, one table line per point after.

The job is `simnet.run.sweep`, which returns a `SweepSummary` and writes the rows; this module
only shows them (imported by the CLI alone).
"""

from __future__ import annotations

import contextlib
import json
import statistics
from collections.abc import Iterator
from pathlib import Path
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
from simnet.errors import SimnetError
from simnet.results import load
from simnet.run.sweep import ProgressSink, run_sweep
from simnet.run.sweep_plan import load_sweep, plan_sweep
from simnet.signals import Terminated


@contextlib.contextmanager
def _progress_bar(console: Console) -> Iterator[ProgressSink]:
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


def _median(values: Any) -> float | None:
    clean = [float(v) for v in values if v is not None and v == v]
    return statistics.median(clean) if clean else None


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return value if isinstance(value, str) else json.dumps(value)


def sweep_command(
    file: Path, out_dir: Path, jobs: int = 1, resume: bool = False, cluster: str | None = None
) -> int:
    """`simnet sweep FILE --out DIR --jobs N [--resume]`: run, then print one line per point.

    Returns the exit code: 0 when every planned run has its row, 1 when some are missing (resume
    to retry them), the error's own code for user errors, 130/143 when interrupted. Calls that
    fail are results, not errors: the table shows them.
    """
    out, err = Console(), Console(stderr=True)
    try:
        with _progress_bar(err) as on_progress:
            summary = run_sweep(
                file, out_dir, jobs, resume, on_progress=on_progress, cluster=cluster
            )
        sweep = load_sweep(file)
        planned = plan_sweep(sweep)
    except SimnetError as exc:
        err.print(show.error(exc), highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted; rows of finished runs are kept: resume to complete the sweep")
        return 130
    except Terminated as exc:
        err.print(show.text(f"terminated ({exc}); rows of finished runs are kept: resume"))
        return 143
    frame = load(out_dir)
    if "sweep" in frame.columns:
        frame = frame[frame["sweep"] == sweep.name]
    table = Table(
        title=show.text(
            f"sweep {sweep.name}: {summary.planned} runs planned, results in {out_dir}/"
        )
    )
    paths = list(dict.fromkeys(path for p in planned for path in p.axes))
    for column in ("point", *paths, "runs", "outcome", "setup ms", "Mbit/s"):
        table.add_column(show.text(column), overflow="fold")
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
        setup = _median(r.get("setup_ms") for r in runs)
        goodput = _median(r.get("dc_goodput_mbps") for r in runs)
        cells = (
            point.point_id,
            *(_show(point.axes.get(p, "")) for p in paths),
            f"{len(runs)}/{sweep.repeat}",
            ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items())) or "-",
            "-" if setup is None else f"{setup:.0f}",
            "-" if goodput is None else f"{goodput:.1f}",
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
        return 1
    return 0

"""`simnet report`'s presentation: where the page went, or the error. Imported by the CLI alone."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from simnet import show
from simnet.errors import SimnetError
from simnet.results.report import report


def report_command(results: list[Path], out: Path) -> int:
    """`simnet report RESULTS... --out report.html`: write the page, say where; exit code."""
    console, err = Console(), Console(stderr=True)
    try:
        path = report(results, out)
    except SimnetError as exc:
        err.print(show.error(exc), highlight=False, soft_wrap=True)
        return exc.exit_code
    pngs = sorted(path.parent.glob(f"{path.stem}-*.png"))
    console.print(
        show.text(f"report: {path} ({len(pngs)} plots, also as PNG beside it)"), highlight=False
    )
    return 0

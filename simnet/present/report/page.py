"""The report page: every section the rows carry data for, in order, with each plot embedded as
a base64 PNG and also written beside the page (`<page stem>-<section>.png`, for slides)."""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from rich.console import Console

from simnet import show
from simnet.present.report.curves import axis_curves, load_curves
from simnet.present.report.figures import png_of
from simnet.present.report.grid import nat_matrices, overview
from simnet.present.report.interop import interop_grids
from simnet.present.report.phases import turn_vs_direct
from simnet.present.report.population import population
from simnet.present.report.rows import prepare
from simnet.present.report.waterfall import phases
from simnet.results.outputs import UnusableOutput, check_output_file, write_output
from simnet.results.store import load_results

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;
max-width:1150px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
thead th{background:#f3f3f3}
table.nat-matrix td{text-align:center;min-width:110px;height:42px;font-weight:600}
.swatch{display:inline-block;width:14px;height:14px;margin:0 4px 0 12px;vertical-align:middle}
img{max-width:100%;display:block;margin:8px 0}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:8px}
.gallery img{margin:0}
details{margin:8px 0}summary{cursor:pointer;color:#444}
.meta{color:#666;font-size:12px}
"""


def write_report(raw: pd.DataFrame, sources: Sequence[Path | str], out_html: Path) -> Path:
    """Write the report page for `raw` (the rows read from `sources`) to `out_html`, PNGs
    beside it; returns `out_html`."""
    frame = prepare(raw)
    sections = [overview(frame), *nat_matrices(frame), *interop_grids(frame)]
    sections += [s for s in (phases(frame), turn_vs_direct(frame), load_curves(frame)) if s]
    sections += population(frame)
    sections += axis_curves(frame)
    tmp = out_html.with_name(out_html.name + ".tmp")
    slugs = [s.slug for s in sections] + [g.slug for s in sections for g in s.gallery]
    for path in (
        out_html,
        tmp,
        *(_png_path(out_html, slug) for slug in slugs),
    ):  # all of them before the first is written
        check_output_file(path, "--out")
    parts = []
    for section in sections:
        image = ""
        if section.figure is not None:
            section.png = png_of(section.figure)
            image = _image(out_html, section.slug, section.title, section.png)
        if section.gallery:
            pictures = "".join(
                _image(out_html, g.slug, g.title, png_of(g.figure), "waterfall")
                for g in section.gallery
            )
            image += f'<div class="gallery">{pictures}</div>'
        parts.append(
            f'<section id="{section.slug}"><h2>{html.escape(section.title)}</h2>'
            f"{section.body}{image}{section.after}</section>"
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    revisions = sorted(set(raw["git_revision"].dropna())) if "git_revision" in raw else []
    meta = (
        f"{len(frame)} runs from {html.escape(', '.join(map(str, sources)))}; generated {stamp}"
        + (f"; simnet revision {html.escape(', '.join(map(str, revisions)))}" if revisions else "")
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>simnet report</title><style>{STYLE}</style></head><body>"
        f'<h1>simnet report</h1><p class="meta">{meta}</p>{"".join(parts)}</body></html>\n'
    )
    tmp = out_html.with_name(out_html.name + ".tmp")
    write_output(tmp, page, "--out")
    try:
        tmp.replace(out_html)
    except OSError as exc:
        raise UnusableOutput(f"--out: cannot write {out_html}: {exc.strerror}") from None
    return out_html


def _png_path(out_html: Path, slug: str) -> Path:
    return out_html.with_name(f"{out_html.stem}-{slug}.png")


def _image(out_html: Path, slug: str, title: str, png: bytes, css: str = "") -> str:
    """The `<img>` of one plot, embedded; the PNG is also written beside the page."""
    write_output(_png_path(out_html, slug), png, "--out")
    encoded = base64.b64encode(png).decode()
    klass = f' class="{css}"' if css else ""
    return f'<img{klass} alt="{html.escape(title)}" src="data:image/png;base64,{encoded}">'


def report(results_dirs: Sequence[Path | str], out_html: Path) -> Path:
    """The page for the rows under `results_dirs` (`load_results`: an error if there are none),
    written to `out_html`; returns `out_html`."""
    return write_report(load_results(results_dirs), [Path(p) for p in results_dirs], out_html)


def say_written(console: Console, path: Path) -> None:
    """What `simnet report` prints once the page is written: where, and how many plots."""
    pngs = sorted(path.parent.glob(f"{path.stem}-*.png"))
    console.print(
        show.text(f"report: {path} ({len(pngs)} plots, also as PNG beside it)"), highlight=False
    )

"""`simnet compare`'s presentation: the terminal table, the Markdown pull-request comment or
the JSON, from the `Comparison` that `simnet.results.compare_files.load_comparison` returns.
Imported by the CLI alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from simnet import show
from simnet.results.compare import METRIC_SPECS, Change, Comparison


def markdown_comment(comparison: Comparison) -> str:
    """A pull-request comment: verdict first, regressions and improvements, the rest folded."""
    regressed = comparison.with_verdict("regressed")
    improved = comparison.with_verdict("improved")
    insufficient = comparison.with_verdict("insufficient-data")
    short = comparison.short_of_runs
    if regressed:
        title = (
            f"## :x: simnet benchmark: {len(regressed)} regression(s) in "
            f"{len(comparison.regressions)} cell(s)"
        )
    elif short:
        title = f"## :x: simnet benchmark: {len(short)} cell(s) without enough runs to tell"
    else:
        title = "## :white_check_mark: simnet benchmark: no significant regression"
    lines = [
        title,
        "",
        f"{comparison.baseline_runs} baseline runs vs {comparison.current_runs} current runs in "
        f"{len(comparison.cells)} cell(s). {_criterion(comparison)}",
    ]
    for heading, group in (("Regressions", regressed), ("Improvements", improved)):
        if group:
            lines += ["", f"### {heading}", "", *_markdown_table(group, verdict=False)]
    if short:
        lines += ["", "### Not enough runs (the gate fails)", "", *(f"- {_md(s)}" for s in short)]
    if insufficient:
        cells = list(dict.fromkeys(c.cell for c in insufficient))
        lines += [
            "",
            f"**Not enough data** for {len(insufficient)} comparison(s) in {len(cells)} "
            f"cell(s) ({_md(', '.join(cells[:10]))}{', ...' if len(cells) > 10 else ''}): "
            "more runs per cell (`--repeat`) are needed to detect a change there.",
        ]
    for label, unmatched in (
        ("only in the baseline (missing now)", comparison.only_in_baseline),
        ("only in the current results (new)", comparison.only_in_current),
    ):
        if unmatched:
            lines += ["", f"Cells {label}: {_md(', '.join(unmatched))}"]
    if comparison.notes:
        lines += ["", "Notes:", *(f"- {_md(note)}" for note in comparison.notes)]
    if comparison.changes:
        lines += [
            "",
            f"<details><summary>All {len(comparison.changes)} comparisons</summary>",
            "",
            *_markdown_table(list(comparison.changes), verdict=True),
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def _criterion(comparison: Comparison) -> str:
    effects = []
    for name, effect in comparison.min_effect.items():
        spec = METRIC_SPECS[name]
        if spec.kind == "rate":
            effects.append(f"{spec.label} {effect.absolute * 100:g} pp")
        else:
            effects.append(
                f"{spec.label} {effect.relative * 100:g}% and {effect.absolute:g} {spec.unit}"
            )
    return (
        f"A change counts when it is significant (Mann-Whitney U for times and goodput, "
        f"Fisher's exact test for rates, p < {comparison.alpha:g}) and at least "
        + "; ".join(effects)
        + "."
    )


def _fmt_value(c: Change, value: float | None, n: int) -> str:
    if value is None:
        return f"- (n={n})"
    if c.spec.kind == "rate":
        return f"{value * 100:.0f}% (n={n})"
    return f"{value:.1f} {c.unit} (n={n})"


def _fmt_change(c: Change) -> str:
    if c.change is None:
        return "-"
    if c.spec.kind == "rate":
        return f"{c.change * 100:+.0f} pp"
    pct = f" ({c.change_pct * 100:+.1f}%)" if c.change_pct is not None else ""
    return f"{c.change:+.1f} {c.unit}{pct}"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def _cells(c: Change) -> list[str]:
    metric = c.spec.label + (" (median)" if c.spec.kind == "distribution" else "")
    return [
        c.cell,
        metric,
        _fmt_value(c, c.baseline, c.baseline_n),
        _fmt_value(c, c.current, c.current_n),
        _fmt_change(c),
        _fmt_p(c.p_value),
    ]


def _md(text: str) -> str:
    """Table-safe: pipes would split cells, `<` could open an HTML tag in a PR comment."""
    return text.replace("|", "\\|").replace("<", "&lt;")


def _markdown_table(changes: list[Change], *, verdict: bool) -> list[str]:
    header = ["cell", "metric", "baseline", "current", "change", "p"]
    if verdict:
        header.append("verdict")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in changes:
        row = _cells(c)
        if verdict:
            row.append(c.verdict + (f" ({c.note})" if c.note else ""))
        lines.append("| " + " | ".join(_md(x) for x in row) + " |")
    return lines


def say_benchmark_written(smaller: Path, bigger: Path) -> None:
    """Where `--github-benchmark` wrote its two files (on stderr: stdout may be a PR comment)."""
    Console(stderr=True).print(
        show.text(f"wrote {smaller} (customSmallerIsBetter) and {bigger} (customBiggerIsBetter)"),
        highlight=False,
    )


def print_comparison(
    comparison: Comparison,
    baseline: Path,
    current: Path,
    *,
    as_json: bool,
    markdown: bool,
) -> None:
    """The comparison on stdout: JSON if `as_json`, else Markdown if `markdown`, else a table
    with the regressions and improvements, a count of the unchanged, and a line per cell without
    enough data."""
    alpha = comparison.alpha
    if as_json:
        print(json.dumps(comparison.as_json(), indent=2))
    elif markdown:
        print(markdown_comment(comparison), end="")
    else:
        out = Console()
        # Regressions and improvements as rows; cells without enough data as one line each,
        # since a matrix at a low --repeat would otherwise fill the screen with them.
        shown = [c for c in comparison.changes if c.verdict in ("regressed", "improved")]
        table = Table(
            title=show.text(
                f"{baseline} -> {current}: {comparison.baseline_runs} vs "
                f"{comparison.current_runs} runs, {len(comparison.cells)} cell(s), "
                f"alpha {alpha:g}"
            )
        )
        for column in ("cell", "metric", "baseline", "current", "change", "p", "verdict"):
            table.add_column(column, justify="right" if column in ("change", "p") else "left")
        colours = {"regressed": "red", "improved": "green", "insufficient-data": "yellow"}
        for c in shown:
            verdict = show.text(
                (c.verdict, colours.get(c.verdict, "default")), f" ({c.note})" if c.note else ""
            )
            table.add_row(*map(show.text, _cells(c)), verdict)
        if shown:
            out.print(table)
        unchanged = comparison.with_verdict("unchanged")
        out.print(
            f"{len(unchanged)} of {len(comparison.changes)} comparisons unchanged",
            highlight=False,
        )
        short: dict[str, dict[str, list[str]]] = {}
        for c in comparison.with_verdict("insufficient-data"):
            short.setdefault(c.cell, {}).setdefault(c.note, []).append(c.metric)
        for cell, reasons in short.items():
            why = "; ".join(
                f"{note} ({'all metrics' if len(names) == len(METRIC_SPECS) else ', '.join(names)})"
                for note, names in reasons.items()
            )
            out.print(
                show.text(("not enough data", "yellow"), f" in {cell}: {why}"), highlight=False
            )
        for label, cells in (
            ("only in the baseline", comparison.only_in_baseline),
            ("only in the current results", comparison.only_in_current),
        ):
            if cells:
                out.print(show.text(f"cells {label}: {', '.join(cells)}"), highlight=False)
        for note in comparison.notes:
            out.print(show.text(f"note: {note}"), highlight=False)
        gate = "--strict" if comparison.strict else f"--min-runs {comparison.min_runs}"
        for line in comparison.short_of_runs:
            out.print(
                show.text(("not enough runs", "bold red"), f" ({gate}): {line}"), highlight=False
            )
        if comparison.regressions:
            out.print(
                show.text(("regression", "bold red"), f" in {', '.join(comparison.regressions)}"),
                highlight=False,
            )
        elif not comparison.short_of_runs:
            out.print("[green]no significant regression[/]")

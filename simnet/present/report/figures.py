"""Plots on matplotlib `Figure`s with the Agg canvas directly: no pyplot, no global backend
switch, so drawing a report from a notebook or a GUI program does not change how that program
draws. The outcome colours are shared by the HTML cells and the PNGs (tests look for them)."""

from __future__ import annotations

import io
from collections.abc import Iterable

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

COLORS = {
    "direct": "#2e9e44",  # green: hole punching worked
    "relay": "#f2a900",  # amber: connected through TURN
    "failed": "#d62f2f",  # red
    "direct/relay": "#9bc53d",  # light green: both paths were taken across repetitions
    "partial": "#ef7d2d",  # orange: some repetitions failed
    "none": "#e6e6e6",  # grey: no run for this cell
}
PATH_COLORS = {"direct": "#2e9e44", "relay": "#f2a900"}
# One colour per variant (scenario, overrides, stacks) in every plot of a page: a qualitative
# palette, colour-blind safe in its first colours, none of them an outcome colour above.
PALETTE = (
    "#0072b2",  # blue
    "#cc79a7",  # reddish purple
    "#56b4e9",  # sky blue
    "#8c564b",  # brown
    "#9467bd",  # purple
    "#17becf",  # cyan
    "#7f7f7f",  # grey
    "#bcbd22",  # olive
    "#393b79",  # navy
    "#e377c2",  # pink
)


def variant_colors(labels: Iterable[str]) -> dict[str, str]:
    """A colour per distinct label, given in sorted order, so every plot drawn from the same
    rows colours a variant alike; the palette repeats beyond its length."""
    names = sorted(set(labels))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def lighter(color: str, amount: float = 0.55) -> tuple[float, float, float]:
    """`color` blended towards white by `amount` (0: unchanged, 1: white)."""
    r, g, b = rgb(color)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def rgb(color: str) -> tuple[float, float, float]:
    value = int(color.lstrip("#"), 16)
    return ((value >> 16) / 255, ((value >> 8) & 255) / 255, (value & 255) / 255)


def attach_canvas(figure: Figure) -> Figure:
    FigureCanvasAgg(figure)
    return figure


def new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height), layout="constrained")
    return attach_canvas(figure), figure.add_subplot()


def png_of(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()

"""The page's pieces of HTML: a section (heading, HTML, optionally one plot) and a table."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from matplotlib.figure import Figure


@dataclass
class Gallery:
    """One of several pictures of a section (e.g. a waterfall per variant): its file name's
    part, its caption and the plot."""

    slug: str
    title: str
    figure: Figure


@dataclass
class Section:
    """One part of the page: a heading, a few lines of HTML, optionally one plot or a gallery
    of them, and HTML after the pictures (e.g. their numbers, folded)."""

    slug: str
    title: str
    body: str
    figure: Figure | None = None
    png: bytes = b""
    gallery: list[Gallery] = field(default_factory=list)
    after: str = ""


def table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

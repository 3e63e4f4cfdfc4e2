"""Putting text a user controls on the terminal, verbatim and harmless.

Names, paths, `--set` arguments, YAML keys and values, and errors that quote them reach the
terminal through rich. Rich reads `[...]` in a plain string as markup: `[/]` in a NAT name raises
MarkupError (a traceback instead of the error), and `[bold]` in a file name silently disappears,
as does the `[a-z]` of a pattern quoted in a message. And a raw escape sequence in a YAML key would
be written to the terminal as is (it can retitle the window, move the cursor, hide text). So text
from outside goes through `text()` (a rich `Text`, never parsed as markup) with its control
characters shown as escapes (`\\x1b`), and only simnet's own words carry styles.
"""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text

from simnet.errors import printable

__all__ = ["error", "markup_safe", "printable", "text"]


def text(*parts: object | tuple[object, str]) -> Text:
    """One piece of output: plain parts are shown verbatim, `(words, style)` parts are styled.

    Nothing in any part is read as markup, so user text can be put in either kind of part."""
    pieces: list[str | tuple[str, str]] = []
    for part in parts:
        if isinstance(part, tuple):
            pieces.append((printable(part[0]), part[1]))
        else:
            pieces.append(printable(part))
    return Text.assemble(*pieces)


def markup_safe(value: object) -> str:
    """For the few rich APIs that only take markup strings (progress and status descriptions)."""
    return escape(printable(value, newlines=False))


def error(message: object, label: str = "error:") -> Text:
    """The one line (plus its indented detail and `fix:` lines) a user error is printed as.

    A line break that does not start an indented line is shown as `\\n`: it came from a
    value the message quotes (a file name with a newline), and printed raw it could start a
    line that looks like an error of its own."""
    lines = str(message).split("\n")
    kept = lines[0]
    for line in lines[1:]:
        kept += ("\n" if not line or line[0] in " \t" else "\\n") + line
    return text((label, "bold red"), " ", kept)

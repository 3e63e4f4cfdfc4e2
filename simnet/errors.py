"""User-facing errors.

Everything a user can cause (a bad scenario, a missing binary, not being root) is raised as a
`SimnetError`; the CLI prints it as one line and exits with its `exit_code`, never with a traceback.
"""

from __future__ import annotations

import unicodedata


class SimnetError(Exception):
    """An error whose message is meant for the user, with what to do about it."""

    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message


class ScenarioError(SimnetError):
    """The scenario file (or an override) is invalid; nothing was built."""

    exit_code = 2


class UsageError(SimnetError):
    """A command-line argument names nothing that exists (a host, a run, a program): exit 2,
    like every other input simnet cannot use."""

    exit_code = 2


class EnvironmentProblem(SimnetError):
    """The machine lacks something a run needs (root, a binary, a kernel feature).

    Exit 2 like every other input simnet cannot use: a CI job tells "could not run" (2) from
    "ran, and a call failed or regressed" (1); the message says which, and how to fix it."""

    exit_code = 2


# Control (Cc), format (Cf: bidi overrides, zero-width) and line/paragraph separators: none of
# them is meant to be seen, and each can change what the terminal shows.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def printable(value: object, *, newlines: bool = True) -> str:
    """`value` as text with every control character escaped the way Python's repr writes it.

    `newlines`: keep line feeds (a multi-line message), else escape them too (one field)."""
    out = []
    for ch in str(value):
        if (ch == "\n" and newlines) or ch == "\t":
            out.append(ch)
        elif unicodedata.category(ch) in HIDDEN_CATEGORIES:
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


#: How much of a value a user gave an error message quotes: enough to recognise it, never a dump.
SHOWN_CHARS = 80


def cut(value: object, limit: int = SHOWN_CHARS) -> str:
    """`value` as text, at most `limit` characters: a longer one ends in "…"."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown_field(value: object, limit: int = SHOWN_CHARS) -> str:
    """A value a user gave (a name, a path), for one line of an error: control characters
    escaped (a newline cannot start a fake line), at most `limit` characters."""
    return cut(printable(value, newlines=False), limit)

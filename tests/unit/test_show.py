"""User text reaches the terminal verbatim and harmless (simnet.show).

Why: rich reads `[...]` as markup, so a NAT named `[/]` crashed the error printer and `[bold]` in a
file name vanished from the message; and a raw escape sequence in a YAML key would have been sent
to the terminal as is.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from simnet import show
from simnet.errors import ScenarioError


def rendered(*args: object) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(*args, highlight=False, soft_wrap=True)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


@pytest.mark.parametrize(
    "words",
    ["[/]", "'[/]x.yaml'", "bad-[bold]x.yaml", "pattern '^[a-z][a-z0-9-]{0,19}$'", "[red]x[/red]"],
)
def test_brackets_are_printed_verbatim(words: str) -> None:
    assert rendered(show.text("at ", words, (" and styled ", "red"), words)) == (
        f"at {words} and styled {words}\n"
    )
    assert rendered(show.error(ScenarioError(f"{words}: bad", fix=words))) == (
        f"error: {words}: bad\n  fix: {words}\n"
    )


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;x\x07", "\\x1b]0;x\\x07"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("right\u202eleft", "right\\u202eleft"),
        ("cr\rlf", "cr\\rlf"),
        ("nul\x00", "nul\\x00"),
    ],
)
def test_control_characters_are_escaped_visibly(raw: str, shown: str) -> None:
    assert show.printable(raw) == shown
    output = rendered(show.error(f"nats.home: unknown field '{raw}'"))
    assert shown in output
    assert not any(ord(c) < 32 and c != "\n" for c in output)


def test_newlines_kept_in_messages_escaped_in_fields() -> None:
    assert show.printable("a\nb") == "a\nb"
    assert show.printable("a\nb", newlines=False) == "a\\nb"
    assert show.printable("tab\there") == "tab\there"


def test_progress_descriptions_are_markup_safe() -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(show.markup_safe("[/] \x1b x"), highlight=False)
    assert console.file.getvalue() == "[/] \\x1b x\n"  # type: ignore[attr-defined]

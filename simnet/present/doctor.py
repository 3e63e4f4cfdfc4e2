"""How `simnet doctor` shows its checks: one table line per check, with the fix when it fails."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from simnet import show
from simnet.doctor import Check


def checks_table(checks: Sequence[Check]) -> Table:
    table = Table(title="simnet doctor")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column)
    for check in checks:
        status = (
            ("ok", "green")
            if check.ok
            else (("missing", "red") if check.required else ("optional", "yellow"))
        )
        table.add_row(
            show.text(check.name),
            show.text(status),
            show.text(check.detail),
            show.text("" if check.ok else check.fix),
        )
    return table

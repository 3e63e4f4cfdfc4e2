"""`simnet load`'s presentation: one table line per level of the load curve."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from simnet import show
from simnet.results.load_levels import LevelFigures

COLUMNS = {
    "calls": "concurrency",
    "connected": "connected_share",
    "set-up p50 ms": "setup_ms_p50",
    "p95 ms": "setup_ms_p95",
    "relayed": "relay_share",
    "TURN alloc fails": "turn_allocation_failures",
    "relayed Mbit/s": "relayed_mbps",
    "relayed pkt/s": "relayed_pps",
    "UDP drops TURN/peers": "udp_drops",
    "coturn CPU %": "coturn_cpu_pct",
    "coturn MB": "coturn_rss_mb",
    "peers CPU %": "agent_cpu_pct",
    "busiest process %": "agent_cpu_pct_max",
    "its busiest 1 s %": "agent_cpu_pct_peak",
    "harness process 1 s %": "harness_cpu_pct_peak",
    "machine idle 1 s %": "machine_idle_pct_low",
    "limited by": "limited",
}


def load_table(name: str, figures: Sequence[LevelFigures], out_dir: Path) -> Table:
    table = Table(title=show.text(f"{name}: load curve (rows in {out_dir})"))
    for column in COLUMNS:
        table.add_column(column)
    for level in figures:
        data = level.model_dump()
        limits = [w for w, on in (("harness", level.harness_limited),
                                  ("emulator", level.emulator_limited),
                                  ("late delay line", level.emulator_late)) if on]  # fmt: skip
        data["limited"] = ", ".join(limits) or "-"
        data["udp_drops"] = f"{level.turn_udp_drops}/{level.peer_udp_drops}"
        table.add_row(*(show.text(str(data[key])) for key in COLUMNS.values()))
    return table


def load_errors(figures: Sequence[LevelFigures]) -> list[str]:
    """One line per level whose calls had errors, with how many of each."""
    return [
        f"at {level.concurrency} calls: "
        + ", ".join(f"{kind} x{n}" for kind, n in sorted(level.errors.items()))
        for level in figures
        if level.errors
    ]

"""How `simnet run` shows its calls: one JSON line per call, or a table of the calls and, for a
call with a timeline, a table of its events."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from simnet import show
from simnet.results.schema import ResultRow

JSON_KEYS = (
    "scenario", "run", "outcome", "connected", "path", "local_candidate", "remote_candidate",
    "relay_protocol", "ice_connect_ms", "setup_ms", "dc_goodput_mbps", "rtt_ms", "error",
    "ice_disconnects", "recovered", "timeline_error", "relay_region", "run_id", "seed",
)  # fmt: skip


#: added to a call's JSON object when its row has them (a network that carries IPv6)
FAMILY_JSON_KEYS = ("ip_family", "via_nat64", "offerer_via_nat64", "answerer_via_nat64")


#: added to a call's JSON object when its row has them (a side behind `firewall.proxy_only`)
PROXY_JSON_KEYS = ("via_proxy", "proxy_target", "proxy_connect_ms")


def json_line(row: ResultRow, keys: Sequence[str] = JSON_KEYS) -> str:
    """A call's row as one JSON object of `keys` (`--json`), and the family keys where the row
    has them. `outcome` is what every output calls the call (`ResultRow.outcome`: direct, relay,
    or failed when it did not connect or ended with an error); `path` stays the type of the pair
    ICE had selected, even for a failed call."""
    if "ip_family" in row:
        keys = (*keys, *(k for k in FAMILY_JSON_KEYS if k not in keys))
    if row.get("via_proxy") is not None:
        keys = (*keys, *(k for k in PROXY_JSON_KEYS if k not in keys))
    return json.dumps({k: row.outcome if k == "outcome" else row.get(k) for k in keys})


def calls_summary(name: str, rows: Sequence[ResultRow], out_dir: Path) -> list[RenderableType]:
    """A table of the calls (outcome, candidate pair, ICE and set-up times, goodput, RTT), then
    per call with a timeline the table of its events and how the call came through."""
    table = Table(title=show.text(f"{name}: {len(rows)} call(s), results in {out_dir}/"))
    for column in ("run", "outcome", "pair", "ICE ms", "set-up ms", "goodput Mbit/s", "RTT ms"):
        table.add_column(column)

    def num(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}"

    for row in rows:
        outcome = show.text(
            (row.outcome, "green") if row.succeeded else (f"failed: {row['error']}", "red")
        )
        pair = f"{row['local_candidate']}/{row['remote_candidate']}"
        if row.get("relay_protocol"):
            pair += f" via TURN/{row['relay_protocol']}"
        table.add_row(
            str(row["run"]), outcome, show.text(pair), num(row["ice_connect_ms"]),
            num(row["setup_ms"]), num(row["dc_goodput_mbps"]), num(row["rtt_ms"]),
        )  # fmt: skip
    parts: list[RenderableType] = [table]
    late = [row for row in rows if row.get("emulator_late")]
    if late:
        parts.append(late_note(late))
    for row in rows:
        if "event0_action" in row:
            parts += _timeline_summary(row, num)
    return parts


def late_note(late: Sequence[ResultRow]) -> Text:
    """Calls whose delay lines released packets more than 1 ms after their due time: their
    delays were longer than the scenario's, by up to the worst lateness."""
    packets = sum(int(row["link_late_packets"]) for row in late)
    released = sum(int(row.get("link_released_packets") or 0) for row in late)
    worst = max(float(row["link_late_max_ms"]) for row in late)
    runs = ", ".join(str(row["run"]) for row in late)
    return show.text(
        (
            f"emulator late in call(s) {runs}: {packets} of {released} packets left the delay "
            f"lines more than 1 ms after their due time (worst {worst:.1f} ms), so those calls "
            "saw longer delays than the scenario's (docs/limits.md)",
            "yellow",
        )
    )


def _timeline_summary(row: ResultRow, num: Callable[[Any], str]) -> list[RenderableType]:
    """Per timeline event: when, what the peers noticed and when they were back, and what the
    call's own checks saw of the path until the next event."""
    table = Table(title=f"run {row['run']}: timeline (ms after the data channel opened)")
    for column in ("at", "event", "noticed", "recovered", "path RTT ms", "path loss %"):
        table.add_column(column)
    table.add_row(
        "", "(before)", "", "", num(row.get("path_rtt_ms_before")),
        num(row.get("path_loss_pct_before")),
    )  # fmt: skip
    i = 0
    while f"event{i}_action" in row:
        e = f"event{i}"
        noticed = row.get(f"{e}_noticed_ms")
        noticed_text = "-" if noticed is None else f"+{noticed:.0f} {row[f'{e}_noticed_state']}"
        recovered = row.get(f"{e}_recovered_ms")
        recovered_text: str | Text = "-" if recovered is None else f"+{recovered:.0f}"
        if row.get(f"{e}_recovery_ms") is not None:
            recovered_text += f" ({row[f'{e}_recovery_ms']:.0f} after restore)"
        if row.get(f"{e}_failed_ms") is not None:
            recovered_text = show.text((f"failed +{row[f'{e}_failed_ms']:.0f}", "red"))
        what = f"{row[f'{e}_action']} {row[f'{e}_target']}"
        if row.get(f"{e}_to") is not None:
            what += f" -> {row[f'{e}_to']} ({row.get(f'{e}_address')})"
        if row.get(f"{e}_restart_connected_ms") is not None:  # an ICE restart that was made
            steps = (("started", "restart_started_ms"), ("connected", "restart_connected_ms"),
                     ("media", "media_flowing_ms"))  # fmt: skip
            recovered_text = ", ".join(
                f"{label} +{row[f'{e}_{key}']:.0f}"
                for label, key in steps
                if row.get(f"{e}_{key}") is not None
            )
        elif row.get(f"{e}_error") is not None:
            recovered_text = show.text((str(row[f"{e}_error"]), "red"))
        table.add_row(
            num(row.get(f"{e}_at_ms")), show.text(what),
            show.text(noticed_text), recovered_text, num(row.get(f"{e}_path_rtt_ms")),
            num(row.get(f"{e}_path_loss_pct")),
        )  # fmt: skip
        i += 1
    verdict = ("recovered", "green") if row.get("recovered") else ("not recovered", "red")
    end = show.text(
        "at the end: ", verdict, f"; ICE disconnections: {row.get('ice_disconnects', 0)}"
    )
    return [table, end]

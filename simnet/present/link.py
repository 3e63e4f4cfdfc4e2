"""How `simnet probe-link` shows its measurement: delay, jitter and loss per direction and
round trip, and the TCP and UDP throughput."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from simnet import show
from simnet.run.link import LinkReport


def link_table(report: LinkReport, host_a: str, host_b: str, udp_rate: str) -> Table:
    """The measurement's table; `udp_rate` is the rate the UDP test aimed at (iperf3 -b)."""
    data = report.as_json()

    def num(value: Any, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    a, b = host_a, host_b
    table = Table(
        title=show.text(
            f"{data['scenario']} (run {data['run_id']}): {a} <-> {b}, "
            f"{data['probes']} probes, {data['server']} serving at {data['target']}"
        )
    )
    for column in ("", f"{a} -> {b}", f"{b} -> {a}", "round trip"):
        table.add_column(show.text(column), justify="right")
    delays = (*report.one_way_ms, report.echo.rtt_ms)
    for stat in ("median", "p95", "min", "max"):
        table.add_row(f"delay {stat} ms", *(num(getattr(d, stat, None)) for d in delays))
    table.add_row("jitter ms", num(data["jitter_ms_ab"]), num(data["jitter_ms_ba"]), "")
    table.add_row(
        "loss %",
        num(data["loss_pct_ab"], 1),
        num(data["loss_pct_ba"], 1),
        num(data["loss_pct"], 1),
    )
    if report.tcp is not None:
        tcp = "failed" if report.tcp.error else num(data["throughput_mbps"], 1)
        table.add_row("TCP Mbit/s", tcp, "", "")
    if report.udp is not None:
        udp = f"{num(data['udp_throughput_mbps'], 1)}, {num(data['udp_loss_pct'], 1)} % lost"
        table.add_row(f"UDP Mbit/s at {udp_rate}", "failed" if report.udp.error else udp, "", "")
    return table


def late_table(report: LinkReport) -> Table | None:
    """Per delay line direction, the packets it released during the echo probes (whose delays
    the main table shows) and those released more than 1 ms after their due time (None without
    a userspace delay line)."""
    if not report.late:
        return None
    table = Table(
        title="delay lines during the echo probes: packets released >1 ms after their due time"
    )
    for column in ("link", "direction", "released", "late", "worst ms"):
        table.add_column(column, justify="right")
    for line in report.as_json()["late_releases"]:
        worst = line["late_max_ms"]
        late = str(line["late"])
        table.add_row(
            line["link"],
            line["direction"],
            str(line["released"]),
            show.text((late, "yellow")) if line["late"] else late,
            "-" if worst is None else f"{worst:.3f}",
        )
    return table

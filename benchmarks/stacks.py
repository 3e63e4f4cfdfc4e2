"""aiortc against Chromium on the NAT matrix, and Chromium's ICE restart per NAT class.

Why: a team choosing which stack to test with needs, per NAT class, the path each stack takes
and how fast it sets up, and how long the matrix costs with browsers (the target: the
25-cell Chromium matrix under 2 minutes here). And a handover's recovery depends on the network
the phone lands on, so the restart is timed per class of that network's NAT.

Measured:
- the 25-cell matrix (`simnet matrix`, TURN offered), once with aiortc and once with Chromium
  peers on both sides, `--repeat` calls a cell: wall time of each (network build, servers,
  ten warm peers, the calls, teardown), and per cell the paths taken and the median set-up
  (offer created -> data channel open, on the shared clock); then per answerer NAT class (the
  five cells with that preset on side B) the median set-up of each stack;
- `scenarios/handover-wifi-to-lte.yaml` with Chromium peers and the NAT alice moves behind
  (`nats.lte.preset`) set to each class, `--restarts` runs each: after the move, the restart
  started, ICE connected again, media flowing again (ms after the ice-restart command), and
  whether the call recovered.

- `scenarios/two-turn-regions.yaml` with Chromium peers (which get every TURN URL), as shipped
  and with one of the two TURN servers 40 ms farther away each way (`servers.NAME.link`),
  `--repeat` calls each: which region relayed each call (the row's `relay_region`).

Usage: .venv/bin/python benchmarks/stacks.py [--repeat 3] [--restarts 2]
       [--parts matrix,restart,regions]
       [--json]   (as root; on a shared machine under `flock /tmp/simnet-it.lock`)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from _runner import describe, run_benchmark
from rich.console import Console
from rich.table import Table

from simnet.results.schema import ResultRow
from simnet.run.calls import run_scenario
from simnet.run.matrix import PRESETS, SHORT, matrix_outcomes, run_matrix
from simnet.scenario.load import load_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
HANDOVER = SCENARIOS / "handover-wifi-to-lte.yaml"
REGIONS = SCENARIOS / "two-turn-regions.yaml"
CHROMIUM_BOTH = ("hosts.alice.peer=chromium", "hosts.bob.peer=chromium")
# which TURN server is far: none, the first listed (eu), the second (us); 40 ms each way
REGION_VARIANTS = {
    "both near": (),
    "eu far": ("servers.turn-eu.link.delay_ms=40",),
    "us far": ("servers.turn-us.link.delay_ms=40",),
}
LANDING = ("full-cone", "restricted-cone", "port-restricted-cone", "symmetric", "cgnat")


def matrix_part(repeat: int) -> dict[str, Any]:
    stacks: dict[str, Any] = {}
    for kind in ("aiortc", "chromium"):
        started = time.monotonic()
        results = run_matrix(repeat=repeat, peers=(kind, kind))
        rows = [r.columns() for r in results]
        wall = time.monotonic() - started
        outcomes = matrix_outcomes(results, turn=True)
        by_class = {
            SHORT[b]: describe(
                [r["setup_ms"] for r in rows if r["nat_b"] == b and r["setup_ms"] is not None], 1
            )["median"]
            for b in PRESETS
        }
        # by the selected pair's candidate types, as the offerer saw them (host / srflx /
        # prflx / relay on each end): what kind of path the set-up bought
        by_pair: dict[str, list[float]] = {}
        for r in rows:
            if r["setup_ms"] is not None:
                key = f"{r['local_candidate']} -> {r['remote_candidate']}"
                by_pair.setdefault(key, []).append(float(r["setup_ms"]))
        stacks[kind] = {
            "setup_ms_by_pair": {k: describe(v, 1) for k, v in sorted(by_pair.items())},
            "wall_s": round(wall, 1),
            "calls": len(rows),
            "connected": sum(bool(r["connected"]) for r in rows),
            "cells_as_expected": sum(o.ok for o in outcomes),
            "cells": {
                f"{SHORT[o.nat_a]}->{SHORT[o.nat_b]}": {
                    "paths": o.outcome,
                    "setup_ms_median": None
                    if o.setup_ms_median is None
                    else round(o.setup_ms_median, 1),
                }
                for o in outcomes
            },
            "setup_ms_median_by_answerer_nat": by_class,
        }
    return stacks


def restart_part(restarts: int) -> dict[str, Any]:
    classes: dict[str, Any] = {}
    for preset in LANDING:
        scenario = load_scenario(HANDOVER, [f"nats.lte.preset={preset}"])
        rows: list[ResultRow] = run_scenario(scenario, restarts)
        flat = [r.columns() for r in rows]

        def figures(column: str, runs: list[dict[str, Any]] = flat) -> list[float]:
            return [float(r[column]) for r in runs if r.get(column) is not None]

        classes[preset] = {
            "runs": len(flat),
            "recovered": sum(bool(r.get("recovered")) for r in flat),
            "noticed_ms": describe(figures("event0_noticed_ms"), 0)["median"],
            "restart_started_ms": describe(figures("event1_restart_started_ms"), 0)["median"],
            "restart_connected_ms": describe(figures("event1_restart_connected_ms"), 0),
            "media_flowing_ms": describe(figures("event1_media_flowing_ms"), 0),
            "path_after": sorted({str(r.get("path")) for r in flat}),
        }
    return classes


def regions_part(repeat: int) -> dict[str, Any]:
    """Which region relays a Chromium call when both TURN servers are offered (a browser gets
    every URL) and one is farther away than the other."""
    variants: dict[str, Any] = {}
    for name, delays in REGION_VARIANTS.items():
        scenario = load_scenario(REGIONS, [*CHROMIUM_BOTH, *delays])
        flat = [r.columns() for r in run_scenario(scenario, repeat)]
        regions = [str(r.get("relay_region")) for r in flat]
        variants[name] = {
            "calls": len(flat),
            "relayed_by": {region: regions.count(region) for region in sorted(set(regions))},
            "setup_ms": describe([r["setup_ms"] for r in flat if r["setup_ms"] is not None], 0),
            "rtt_ms": describe([r["rtt_ms"] for r in flat if r.get("rtt_ms") is not None], 1),
        }
    return variants


def measure(repeat: int, restarts: int, parts: set[str]) -> dict[str, Any]:
    result: dict[str, Any] = {"repeat": repeat, "restarts": restarts}
    if "matrix" in parts:
        result["matrix"] = matrix_part(repeat)
    if "restart" in parts:
        result["restart"] = restart_part(restarts)
    if "regions" in parts:
        result["regions"] = regions_part(repeat)
    return result


def show(result: dict[str, Any], console: Console) -> None:
    matrix = result.get("matrix")
    if matrix:
        for kind, figures in matrix.items():
            console.print(
                f"{kind}: 25-cell matrix x {result['repeat']}: {figures['wall_s']} s wall, "
                f"{figures['connected']}/{figures['calls']} connected, "
                f"{figures['cells_as_expected']}/25 cells as expected",
                markup=False,
            )
        table = Table(title="per cell: paths and median set-up (ms)")
        for col in ("cell", "aiortc", "chromium"):
            table.add_column(col)
        for cell in matrix["aiortc"]["cells"]:
            a, c = matrix["aiortc"]["cells"][cell], matrix["chromium"]["cells"][cell]
            table.add_row(
                cell,
                f"{a['paths']} {a['setup_ms_median']}",
                f"{c['paths']} {c['setup_ms_median']}",
            )
        console.print(table)
        by_class = Table(title="median set-up (ms) by the answerer's NAT")
        for col in ("answerer NAT", "aiortc", "chromium"):
            by_class.add_column(col)
        for cls in matrix["aiortc"]["setup_ms_median_by_answerer_nat"]:
            by_class.add_row(
                cls,
                str(matrix["aiortc"]["setup_ms_median_by_answerer_nat"][cls]),
                str(matrix["chromium"]["setup_ms_median_by_answerer_nat"][cls]),
            )
        console.print(by_class)
        by_pair = Table(title="set-up (ms) by the selected pair's candidate types (offerer's view)")
        for col in ("stack", "pair", "calls", "median", "p90"):
            by_pair.add_column(col)
        for kind, figures in matrix.items():
            for pair, f in figures["setup_ms_by_pair"].items():
                by_pair.add_row(kind, pair, str(f["n"]), str(f["median"]), str(f["p90"]))
        console.print(by_pair)
    restart = result.get("restart")
    if restart:
        table = Table(title="Chromium ICE restart after a move, by the NAT moved behind (ms)")
        for col in (
            "NAT",
            "recovered",
            "noticed",
            "started",
            "connected (median, max)",
            "media (median, max)",
            "path after",
        ):
            table.add_column(col)
        for preset, f in restart.items():
            table.add_row(
                preset,
                f"{f['recovered']}/{f['runs']}",
                str(f["noticed_ms"]),
                str(f["restart_started_ms"]),
                f"{f['restart_connected_ms']['median']}, {f['restart_connected_ms']['max']}",
                f"{f['media_flowing_ms']['median']}, {f['media_flowing_ms']['max']}",
                ", ".join(f["path_after"]),
            )
        console.print(table)
    if result.get("regions"):
        show_regions(result["regions"], console)


def show_regions(regions: dict[str, Any], console: Console) -> None:
    table = Table(title="two-turn-regions, Chromium peers: which region relayed")
    for col in ("variant", "relayed by", "set-up ms (median)", "RTT ms (median)"):
        table.add_column(col)
    for name, f in regions.items():
        table.add_row(
            name,
            ", ".join(f"{k} {v}/{f['calls']}" for k, v in f["relayed_by"].items()),
            str(f["setup_ms"]["median"]),
            str(f["rtt_ms"]["median"]),
        )
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="calls per matrix cell")
    parser.add_argument("--restarts", type=int, default=2, help="handover runs per NAT class")
    parser.add_argument("--parts", default="matrix,restart,regions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    return run_benchmark(
        lambda: measure(args.repeat, args.restarts, parts),
        lambda r: show(r, Console()),
        as_json=args.json,
        log=Console(stderr=True),
    )


if __name__ == "__main__":
    sys.exit(main())

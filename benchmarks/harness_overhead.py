"""What the harness itself costs: per call (around the measured set-up) and per 25-cell matrix.

Why this exists: simnet's numbers are only useful if a run is cheap enough to make many. Two
targets are checked on the machine this runs on:

(a) per-call harness overhead under 100 ms (median): a call's `wall_ms` (the controller's wall
    time for the call, from sending both agents their command to having the row) minus its
    `setup_ms` (offer created -> data channel open, what the call measures). Measured on a simple
    scenario (default `scenarios/direct-lan.yaml`) over `--repeat` calls, with `call.data_bytes=0`
    by default so that the 1 MB goodput transfer (a measurement, not overhead) is left out;
    `--data-bytes` puts it back. The overhead is also broken down on the shared monotonic clock,
    from each peer's own event timestamps: dispatch (command -> the offerer's call started),
    pre-offer (peer connection + signaling channel open), after-open (RTT probes, transfer,
    "done" exchange), close (closing the peer connection), and collect (the offerer's close
    ended -> row: waiting for the answerer, results, parsing).

(b) the 25-cell NAT preset matrix (`run_scenario(matrix_scenario(), cells=matrix_cells())`, TURN
    offered, calls as shipped: 1 MB transfer each) under 60 s wall, build, services and teardown
    included; reported with runs per minute, the per-call mean, and the phases: build (plan +
    namespaces + nftables), services (coturn, signaling, 10 warm agents), the calls, stopping
    the services, and removing the network. "Ready" (build + services) is also measured purely
    from outside, as the first row's arrival minus the start minus that call's own wall time.

How phases are timed: from outside simnet, without changing it. For the duration of a run this
script wraps three names simnet looks up when it runs (`start_services` in `simnet.run.calls`,
`start_coturn` and `call_row` in `simnet.run.one_call`), recording a time stamp around each and
keeping the two peers' `CallResult`s, and restores them afterwards. The wrappers add a few
microseconds per call. If simnet renames one of them, the breakdown is left out and the headline
figures still come.

The first call of a run between fresh agents is a little slower (measured here: set-up ~1.5x a
later call's), so (a) makes `--warmup` calls first and leaves them out of the statistics (they
are reported separately); (b) counts everything, as a user running `simnet matrix` would.

Usage: .venv/bin/python benchmarks/harness_overhead.py [--repeat 20] [--warmup 1]
       [--matrix-runs 1] [--data-bytes 0] [--scenario scenarios/direct-lan.yaml] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _runner import describe, run_benchmark
from rich.console import Console
from rich.table import Table

import simnet.run.calls as session
import simnet.run.one_call as one_call
from simnet.peer.protocol import CallResult
from simnet.run.calls import Row, run_scenario
from simnet.run.matrix import expected_paths, matrix_cells, matrix_scenario
from simnet.scenario import load_scenario

DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "direct-lan.yaml"
OVERHEAD_TARGET_MS = 100.0
MATRIX_TARGET_S = 60.0
CALL_SEGMENTS = ("dispatch", "pre_offer", "setup", "after_open", "close", "collect")
SEGMENT_HELP = {
    "dispatch": "command written -> offerer's call started (agent reads the command)",
    "pre_offer": "call started -> offer created (RTCPeerConnection, signaling channel open)",
    "setup": "offer created -> data channel open (setup_ms, the measurement)",
    "after_open": "data channel open -> closing (RTT probes, transfer, 'done' exchange)",
    "close": "closing the offerer's peer connection (close_s)",
    "collect": "offerer's close ended -> row (answerer still closing, result events, parsing)",
}
MATRIX_PHASES = ("build", "coturn", "signaling", "agents", "calls", "stop_services", "teardown")


# --- instrumentation: time stamps from outside simnet -----------------------------------------


@dataclass
class Timeline:
    """Monotonic time stamps of one `run_scenario`, and the rows with their arrival times."""

    start: float = 0.0
    end: float = 0.0
    services_begin: float | None = None
    services_end: float | None = None
    coturn: list[tuple[float, float]] = field(default_factory=list)
    agents_spawned: list[float] = field(default_factory=list)
    agents_ready: list[float] = field(default_factory=list)
    agent_ready_s: list[float] = field(default_factory=list)
    agent_close_s: list[float] = field(default_factory=list)
    close_begin: float | None = None
    close_end: float | None = None
    rows: list[Row] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    results: list[tuple[CallResult | None, CallResult | None]] = field(default_factory=list)
    instrumented: bool = False

    def on_row(self, row: Row) -> None:
        self.arrivals.append(time.monotonic())
        self.rows.append(row)


@contextlib.contextmanager
def instrumented(timeline: Timeline) -> Iterator[None]:
    """Wrap `start_services` in `simnet.run.calls`, `start_coturn` and `call_row` in
    `simnet.run.one_call` (where each is looked up)."""
    modules = {"start_services": session, "start_coturn": one_call, "call_row": one_call}
    originals = {name: getattr(module, name, None) for name, module in modules.items()}
    if any(f is None for f in originals.values()):
        yield  # simnet changed: no breakdown, the headline figures still work
        return
    start_services = originals["start_services"]
    start_coturn = originals["start_coturn"]
    call_row = originals["call_row"]
    assert start_services is not None and start_coturn is not None and call_row is not None

    @functools.wraps(start_services)
    async def timed_services(*args: Any, **kwargs: Any) -> Any:
        timeline.services_begin = time.monotonic()
        services = await start_services(*args, **kwargs)
        timeline.services_end = time.monotonic()
        for agent in services.agents.values():
            timeline.agents_spawned.append(agent.spawned_t)
            if agent.ready_t is not None:
                timeline.agents_ready.append(agent.ready_t)
            if agent.ready_s is not None:
                timeline.agent_ready_s.append(agent.ready_s)
        for agent in services.agents.values():
            agent.close = timed_agent_close(agent.close)
        close = services.close

        async def timed_close() -> None:
            timeline.close_begin = time.monotonic()
            try:
                await close()
            finally:
                timeline.close_end = time.monotonic()

        services.close = timed_close  # this instance only
        return services

    def timed_agent_close(close: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def timed(*args: Any, **kwargs: Any) -> None:
            begin = time.monotonic()
            try:
                await close(*args, **kwargs)
            finally:
                timeline.agent_close_s.append(time.monotonic() - begin)

        return timed

    @functools.wraps(start_coturn)
    async def timed_coturn(*args: Any, **kwargs: Any) -> Any:
        begin = time.monotonic()
        handle = await start_coturn(*args, **kwargs)
        timeline.coturn.append((begin, time.monotonic()))
        return handle

    @functools.wraps(call_row)
    def kept_row(
        offer: CallResult | None, answer: CallResult | None, *args: Any, **kwargs: Any
    ) -> Any:
        timeline.results.append((offer, answer))
        return call_row(offer, answer, *args, **kwargs)

    setattr(session, "start_services", timed_services)  # noqa: B010
    setattr(one_call, "start_coturn", timed_coturn)  # noqa: B010
    setattr(one_call, "call_row", kept_row)  # noqa: B010
    timeline.instrumented = True
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(modules[name], name, original)


def timed_run(run: Callable[[Callable[[Row], None]], list[Row]]) -> Timeline:
    """Run `run(on_row)` under the instrumentation; every time stamp of it."""
    timeline = Timeline()
    with instrumented(timeline):
        timeline.start = time.monotonic()
        run(timeline.on_row)
        timeline.end = time.monotonic()
    if len(timeline.results) != len(timeline.rows):
        timeline.results = []  # cannot pair them up: no per-call breakdown
    return timeline


# --- (a) per-call overhead --------------------------------------------------------------------


def segments(
    row: Row, arrival: float, offer: CallResult, answer: CallResult | None
) -> dict[str, float] | None:
    """One call's wall time cut at the peers' own event time stamps (all on one clock)."""
    p = offer.phase_t
    needed = ("call_started", "offer_created", "dc_open", "closing")
    if offer.close_s is None or any(k not in p for k in needed):
        return None
    started = arrival - row["wall_ms"] / 1000  # the controller's clock when the call began
    offer_end = p["closing"] + offer.close_s
    out = {
        "dispatch": p["call_started"] - started,
        "pre_offer": p["offer_created"] - p["call_started"],
        "setup": p["dc_open"] - p["offer_created"],
        "after_open": p["closing"] - p["dc_open"],
        "close": offer.close_s,
        "collect": arrival - offer_end,
    }
    if answer is not None and "closing" in answer.phase_t and answer.close_s is not None:
        out["answerer_ends_after_offerer"] = answer.phase_t["closing"] + answer.close_s - offer_end
    return {k: v * 1000 for k, v in out.items()}


def per_call(args: argparse.Namespace, log: Console) -> dict[str, Any]:
    overrides = [f"call.data_bytes={args.data_bytes}", *args.overrides]
    scenario = load_scenario(args.scenario, overrides)
    total = args.warmup + args.repeat
    log.print(f"[dim](a) {scenario.name}: {total} calls ({args.warmup} warm-up)[/dim]")

    def run(on_row: Callable[[Row], None]) -> list[Row]:
        return run_scenario(scenario, repeat=total, on_row=on_row)

    t = timed_run(run)
    measured = [i for i, r in enumerate(t.rows) if r["run"] >= args.warmup]
    connected = [i for i in measured if t.rows[i].get("connected")]
    overhead = [t.rows[i]["wall_ms"] - t.rows[i]["setup_ms"] for i in connected]
    cuts: list[dict[str, float]] = []
    for i in connected:
        if t.results:
            offer, answer = t.results[i]
            cut = segments(t.rows[i], t.arrivals[i], offer, answer) if offer else None
            if cut is not None:
                cuts.append(cut)
    keys = [*CALL_SEGMENTS, "answerer_ends_after_offerer"]
    breakdown = {k: describe([c[k] for c in cuts if k in c]) for k in keys} if cuts else {}
    stats = describe(overhead)
    median = stats["median"]
    return {
        "scenario": str(args.scenario),
        "scenario_name": scenario.name,
        "overrides": overrides,
        "calls": len(measured),
        "connected": len(connected),
        "paths": sorted({str(t.rows[i].get("path")) for i in connected}),
        "overhead_ms": stats,
        "wall_ms": describe([t.rows[i]["wall_ms"] for i in connected]),
        "setup_ms": describe([t.rows[i]["setup_ms"] for i in connected]),
        "breakdown_ms": breakdown,
        "warmup_calls": [
            {k: round(r[k], 2) if r.get(k) is not None else None for k in ("wall_ms", "setup_ms")}
            for r in t.rows
            if r["run"] < args.warmup
        ],
        "run_wall_s": round(t.end - t.start, 2),
        "target_ms": OVERHEAD_TARGET_MS,
        "target_met": median is not None and median < OVERHEAD_TARGET_MS,
        "samples_ms": [round(x, 2) for x in overhead],
    }


# --- (b) the matrix ---------------------------------------------------------------------------


def matrix_phases(t: Timeline) -> dict[str, float] | None:
    """Seconds per phase of one matrix run, from the instrumentation (None without it)."""
    marks = (t.services_begin, t.services_end, t.close_begin, t.close_end)
    if not t.instrumented or any(m is None for m in marks) or not t.agents_spawned:
        return None
    assert t.services_begin is not None and t.services_end is not None
    assert t.close_begin is not None and t.close_end is not None
    coturn_end = max((e for _, e in t.coturn), default=t.services_begin)
    first_spawn = min(t.agents_spawned)
    return {
        "build": t.services_begin - t.start,
        "coturn": coturn_end - t.services_begin,
        "signaling": first_spawn - coturn_end,
        "agents": t.services_end - first_spawn,
        "calls": t.close_begin - t.services_end,
        "stop_services": t.close_end - t.close_begin,
        "teardown": t.end - t.close_end,
    }


def matrix_once(index: int, log: Console) -> dict[str, Any]:
    scenario, cells = matrix_scenario(), matrix_cells()
    log.print(f"[dim](b) matrix run {index + 1}: {len(cells)} cells[/dim]")

    def run(on_row: Callable[[Row], None]) -> list[Row]:
        return run_scenario(scenario, on_row=on_row, cells=cells)

    t = timed_run(run)
    total = t.end - t.start
    walls = [r["wall_ms"] for r in t.rows]
    setups = [r["setup_ms"] for r in t.rows if r.get("setup_ms") is not None]
    first_ready = t.arrivals[0] - t.start - walls[0] / 1000 if t.rows else None
    contradictions = [
        f"{r['nat_a']}->{r['nat_b']}: {r.get('path') or 'failed'}"
        for r in t.rows
        if (r.get("path") if r.get("connected") else "failed")
        not in expected_paths(r["nat_a"], r["nat_b"], turn=True)
    ]
    phases = matrix_phases(t)
    return {
        "cells": len(cells),
        "calls": len(t.rows),
        "connected": sum(1 for r in t.rows if r.get("connected")),
        "paths": {p: sum(1 for r in t.rows if r.get("path") == p) for p in ("direct", "relay")},
        "contradictions": contradictions,
        "total_s": round(total, 3),
        "runs_per_minute": round(len(t.rows) / total * 60, 1) if total else None,
        "ready_from_outside_s": None if first_ready is None else round(first_ready, 3),
        "first_row_s": round(t.arrivals[0] - t.start, 3) if t.arrivals else None,
        "after_last_row_s": round(t.end - t.arrivals[-1], 3) if t.arrivals else None,
        "phases_s": None if phases is None else {k: round(v, 3) for k, v in phases.items()},
        "agent_ready_s": describe(t.agent_ready_s),
        "agent_close_s": {
            "n": len(t.agent_close_s),
            "sum": round(sum(t.agent_close_s), 3),
            "max": round(max(t.agent_close_s), 3) if t.agent_close_s else None,
        },
        "call_wall_mean_ms": round(statistics.fmean(walls), 1) if walls else None,
        "call_wall_ms": describe(walls),
        "call_setup_mean_ms": round(statistics.fmean(setups), 1) if setups else None,
        "target_s": MATRIX_TARGET_S,
        "target_met": total < MATRIX_TARGET_S,
    }


# --- output -----------------------------------------------------------------------------------


def fmt(value: float | int | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_tables(result: dict[str, Any]) -> None:
    console = Console(width=None if sys.stdout.isatty() else 140)
    a = result.get("per_call")
    if a is not None:
        table = Table(
            title=(
                f"(a) per-call harness overhead on {a['scenario_name']}: "
                f"{a['connected']}/{a['calls']} calls connected "
                f"({', '.join(a['overrides'])}; warm-up left out)"
            )
        )
        for name in ("ms per call", "median", "p10", "p90", "mean", "max", "what"):
            table.add_column(name, justify="left" if name in ("ms per call", "what") else "right")

        def add(label: str, s: dict[str, Any], what: str, end: bool = False) -> None:
            cells = (fmt(s[k]) for k in ("median", "p10", "p90", "mean", "max"))
            table.add_row(label, *cells, what, end_section=end)

        add("overhead", a["overhead_ms"], "wall_ms - setup_ms  (target: median < 100 ms)")
        add("wall_ms", a["wall_ms"], "the controller's time for the call")
        add("setup_ms", a["setup_ms"], "offer created -> data channel open", end=True)
        for key in CALL_SEGMENTS:
            if key in a["breakdown_ms"]:
                add(f"  {key}", a["breakdown_ms"][key], SEGMENT_HELP[key])
        if "answerer_ends_after_offerer" in a["breakdown_ms"]:
            add(
                "  (answerer lag)",
                a["breakdown_ms"]["answerer_ends_after_offerer"],
                "answerer's close end - offerer's (inside collect)",
            )
        console.print(table)
        verdict = "met" if a["target_met"] else "NOT met"
        warm = ", ".join(
            f"wall {w['wall_ms']} ms / setup {w['setup_ms']} ms" for w in a["warmup_calls"]
        )
        console.print(
            f"target median overhead < {OVERHEAD_TARGET_MS:.0f} ms: {verdict} "
            f"(median {fmt(a['overhead_ms']['median'])} ms, p90 {fmt(a['overhead_ms']['p90'])} ms)"
            + (f"; warm-up call(s) left out: {warm}" if warm else "")
            + f"; the whole run took {a['run_wall_s']} s",
            highlight=False,
        )
    runs = result.get("matrix", [])
    if runs:
        table = Table(title="(b) the 25-cell NAT preset matrix, TURN offered (seconds)")
        table.add_column("", justify="left")
        for i in range(len(runs)):
            table.add_column(f"run {i + 1}", justify="right")

        def row(label: str, values: list[str], end: bool = False) -> None:
            table.add_row(label, *values, end_section=end)

        row("total wall (target < 60 s)", [fmt(r["total_s"], 2) for r in runs])
        row("runs per minute", [fmt(r["runs_per_minute"]) for r in runs])
        row("connected / calls", [f"{r['connected']}/{r['calls']}" for r in runs])
        row("direct / relay", [f"{r['paths']['direct']}/{r['paths']['relay']}" for r in runs])
        row("contradicting ICE theory", [str(len(r["contradictions"])) for r in runs], end=True)
        row("ready (outside: 1st row - start - its wall)", [
            fmt(r["ready_from_outside_s"], 2) for r in runs
        ])  # fmt: skip
        for phase in MATRIX_PHASES:
            row(
                f"  {phase}",
                [fmt(r["phases_s"][phase], 3) if r["phases_s"] else "-" for r in runs],
                end=phase == MATRIX_PHASES[-1],
            )
        row("agent spawn -> ready, max", [fmt(r["agent_ready_s"]["max"], 2) for r in runs])
        row("agent close, sum (one after another)", [
            fmt(r["agent_close_s"]["sum"], 3) for r in runs
        ])  # fmt: skip
        row("agent close, max", [fmt(r["agent_close_s"]["max"], 3) for r in runs])
        row("per call: mean wall (ms)", [fmt(r["call_wall_mean_ms"]) for r in runs])
        row("per call: median wall (ms)", [fmt(r["call_wall_ms"]["median"]) for r in runs])
        row("per call: mean setup (ms)", [fmt(r["call_setup_mean_ms"]) for r in runs])
        row("after the last row", [fmt(r["after_last_row_s"], 3) for r in runs])
        console.print(table)
        notes = [
            "build: plan + namespaces + nftables; coturn: start and wait ready; signaling: "
            "coturn ready -> first agent spawned; agents: 10 warm agents spawned -> all ready; "
            "calls: 25 calls (1 MB transfer each); stop_services: agents, signaling, coturn; "
            "teardown: the network removed",
        ]
        for i, r in enumerate(runs):
            if r["contradictions"]:
                notes.append(f"run {i + 1} contradictions: {', '.join(r['contradictions'])}")
        console.print("\n".join(notes), highlight=False)
    console.print(
        f"{result['host']['cpus']} CPUs, load average before {result['host']['loadavg_before']}",
        highlight=False,
    )


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=20, help="(a): calls measured (default 20)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="(a): calls made first, left out (default 1)"
    )
    parser.add_argument(
        "--data-bytes",
        type=int,
        default=0,
        help="(a): call.data_bytes; the transfer is a measurement, not overhead (default 0)",
    )
    parser.add_argument(
        "--scenario", type=Path, default=DEFAULT_SCENARIO, help="(a): default direct-lan.yaml"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="(a): extra scenario override (repeatable)",
    )
    parser.add_argument(
        "--matrix-runs", type=int, default=1, help="(b): matrix runs, 0 to skip (default 1)"
    )
    parser.add_argument("--skip-calls", action="store_true", help="skip (a)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.warmup < 0 or args.matrix_runs < 0 or args.data_bytes < 0:
        parser.error("--warmup, --matrix-runs and --data-bytes must not be negative")
    return args


def benchmark(args: argparse.Namespace, log: Console) -> dict[str, Any]:
    loadavg = os.getloadavg()
    result: dict[str, Any] = {"benchmark": "harness_overhead"}
    if not args.skip_calls:
        result["per_call"] = per_call(args, log)
    result["matrix"] = [matrix_once(i, log) for i in range(args.matrix_runs)]
    result["host"] = {
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in loadavg],
    }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log = Console(stderr=True)
    return run_benchmark(lambda: benchmark(args, log), print_tables, as_json=args.json, log=log)


if __name__ == "__main__":
    sys.exit(main())

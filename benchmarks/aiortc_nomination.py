"""Why aiortc relays where Chromium goes direct: the order in which aioice's checks succeed.

The NAT matrix with TURN offered shows aiortc on a relayed pair in five cells where hole punching
works (full-cone -> restricted-cone, fc -> port-restricted, rc -> rc, rc -> prc, prc -> prc) and
Chromium on a direct pair in the same cells. The claim to check: aioice, as the controlling agent,
nominates aggressively (every check it sends carries USE-CANDIDATE: aioice/ice.py,
`nominate = self.ice_controlling and not self.remote_is_lite` in `check_start`), so the first pair
whose check succeeds is the selected pair, and the others are pruned (`check_complete`). Where the
answerer's NAT filters by address, the offerer's first direct check arrives before the answerer
has sent anything out of its NAT and is dropped; aioice retransmits it 500 ms later (its STUN
transaction's first retransmission), while a relayed pair, whose path has no filter in the way,
succeeds at the first try.

How: one network with the five cells (offerer behind NAT A, answerer behind NAT B, coturn and the
signaling server public), the aiortc agents logging aioice at INFO (`SIMNET_AGENT_LOG=INFO`; the
log lines `Check CandidatePair(local -> remote) State.X -> State.Y` are aioice's own), and per
call, from the offerer's log: when each pair succeeded (ms after the first check started),
whether the first success was relayed or direct, and the pair the call reports as selected.
A pair is relayed when either address is the TURN server's.

Usage: .venv/bin/python benchmarks/aiortc_nomination.py [--repeat 3] [--json]
       (as root; on a shared machine under `flock /tmp/simnet-it.lock`)
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import datetime
from typing import Any

from _runner import BenchmarkError, describe, run_benchmark
from rich.console import Console
from rich.table import Table

from simnet.net.builder import Network, emulated_network
from simnet.net.plan import plan_network
from simnet.run.one_call import one_call, start_services
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import CallSpec, Scenario
from simnet.signals import run_terminable

CELLS = [
    ("full-cone", "restricted-cone"),
    ("full-cone", "port-restricted-cone"),
    ("restricted-cone", "restricted-cone"),
    ("restricted-cone", "port-restricted-cone"),
    ("port-restricted-cone", "port-restricted-cone"),
]
SHORT = {"full-cone": "fc", "restricted-cone": "rc", "port-restricted-cone": "prc"}
CHECK = re.compile(
    r"^(\S+ \S+) aioice\.ice INFO .*Check CandidatePair\(\('([\d.]+)', \d+\) -> "
    r"\('([\d.]+)', \d+\)\) State\.(\w+) -> State\.(\w+)"
)


def scenario() -> Scenario:
    nats: dict[str, Any] = {}
    hosts: dict[str, Any] = {}
    for i, (a, b) in enumerate(CELLS):
        nats[f"a{i}"] = {"preset": a}
        nats[f"b{i}"] = {"preset": b}
        hosts[f"o{i}"] = {"behind": f"a{i}"}
        hosts[f"r{i}"] = {"behind": f"b{i}"}
    return scenario_from_dict(
        {
            "name": "aiortc-nomination",
            "nats": nats,
            "hosts": hosts,
            "servers": {"turn": {"kind": "turn"}, "signaling": {"kind": "signaling"}},
        }
    )


def checks(lines: list[str], turn_ips: set[str]) -> list[dict[str, Any]]:
    """aioice's check transitions, in order: when (s, wall clock of the log), pair kind, states."""
    found = []
    for line in lines:
        m = CHECK.match(line)
        if m:
            stamp, local, remote, old, new = m.groups()
            t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            kind = "relay" if {local, remote} & turn_ips else "direct"
            found.append({"t": t, "kind": kind, "old": old, "new": new, "pair": (local, remote)})
    return found


async def measure_async(network: Network, sc: Scenario, repeat: int) -> dict[str, Any]:
    peers = [h for i in range(len(CELLS)) for h in (f"o{i}", f"r{i}")]
    services = await start_services(network, sc, peers)
    turn_ips = {str(ip) for h in services.turn.values() for ip in h.config.listening_ips}
    cells: list[dict[str, Any]] = []
    try:
        for i, (a, b) in enumerate(CELLS):
            call = CallSpec(offerer=f"o{i}", answerer=f"r{i}")
            log = network.run.workdir / f"agent-{network.ns(call.offerer)}.log"
            calls = []
            for n in range(repeat):
                start = log.stat().st_size
                offer, _, error = await one_call(sc, call, services, i * repeat + n)
                if offer is None or not offer.connected or offer.selected_pair is None:
                    raise BenchmarkError(f"{a} -> {b}: the call did not connect ({error})")
                with log.open() as f:
                    f.seek(start)
                    seen = checks(f.read().splitlines(), turn_ips)
                if not seen:
                    raise BenchmarkError(f"no aioice check lines in {log}: is the level INFO?")
                t0 = seen[0]["t"]
                succeeded = [c for c in seen if c["new"] == "SUCCEEDED"]
                first = {
                    k: next((c for c in succeeded if c["kind"] == k), None)
                    for k in ("direct", "relay")
                }
                retried_direct = any(c["kind"] == "direct" and c["new"] == "FAILED" for c in seen)
                calls.append(
                    {
                        "selected": "relay" if offer.selected_pair.relay else "direct",
                        "first_success": succeeded[0]["kind"] if succeeded else None,
                        "direct_ok_ms": None
                        if first["direct"] is None
                        else round((first["direct"]["t"] - t0) * 1000, 1),
                        "relay_ok_ms": None
                        if first["relay"] is None
                        else round((first["relay"]["t"] - t0) * 1000, 1),
                        "direct_failed_pairs": retried_direct,
                        "setup_ms": round((offer.setup_s or 0) * 1000, 1),
                        # every transition: pair kind, new state, ms after the first
                        "transitions": [
                            (c["kind"], c["new"], round((c["t"] - t0) * 1000)) for c in seen
                        ],
                    }
                )
            cells.append(
                {
                    "cell": f"{SHORT[a]} -> {SHORT[b]}",
                    "calls": calls,
                    "selected_is_first_success": sum(
                        c["selected"] == c["first_success"] for c in calls
                    ),
                    "relay_ok_ms": describe(
                        [c["relay_ok_ms"] for c in calls if c["relay_ok_ms"] is not None], 1
                    ),
                    "direct_ok_ms": describe(
                        [c["direct_ok_ms"] for c in calls if c["direct_ok_ms"] is not None], 1
                    ),
                }
            )
    finally:
        await services.close()
    return {"repeat": repeat, "cells": cells}


def measure(repeat: int) -> dict[str, Any]:
    os.environ["SIMNET_AGENT_LOG"] = "INFO"  # the agents inherit it: aioice's check log
    sc = scenario()
    with emulated_network(plan_network(sc), label="bench aiortc-nomination") as network:
        return run_terminable(measure_async(network, sc, repeat))


def show(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"aioice (controlling) per call, {result['repeat']} calls per cell")
    for col in (
        "cell",
        "selected",
        "first pair to succeed",
        "relay ok ms",
        "direct ok ms",
        "selected = first",
    ):
        table.add_column(col)
    for cell in result["cells"]:
        calls = cell["calls"]
        table.add_row(
            cell["cell"],
            ", ".join(c["selected"] for c in calls),
            ", ".join(str(c["first_success"]) for c in calls),
            str(cell["relay_ok_ms"]["median"]),
            str(cell["direct_ok_ms"]["median"]),
            f"{cell['selected_is_first_success']}/{len(calls)}",
        )
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    console = Console(stderr=True)
    return run_benchmark(
        lambda: measure(args.repeat),
        lambda r: show(r, Console()),
        as_json=args.json,
        log=console,
    )


if __name__ == "__main__":
    sys.exit(main())

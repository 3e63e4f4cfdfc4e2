"""The load curve through one coturn: TURN over UDP, TCP and TLS, and the same calls direct.

Why: "how many relayed calls does this coturn carry before set-up time and loss blow up" is
the question a TURN operator asks; coturn's own `turnutils_uclient` answers it for bare
allocations, not for calls (no ICE, no DTLS, no retransmission). Here every point is real
WebRTC calls (aiortc, audio), all through the same coturn, level after level.

How: `scenarios/turn-load.yaml` (every caller and callee behind a symmetric NAT of its own),
`simnet.run.load.run_load` with `--levels`, four variants: relay-only over TURN/UDP, TURN/TCP,
TURN/TLS (`call.ice_policy=relay`, `call.turn_transports=[X]`), and direct (the NATs made
full-cone, no TURN offered). Per level: connected share, set-up p50/p95, relayed Mbit/s (bytes
coturn's interface sent), coturn CPU and memory, the peers' CPU and whether the harness or the
emulator was the limit (`simnet.results.load_levels`).

Audio is replayed by default (`--coding replay`: encoded once, counted not decoded, see
`MediaSpec.coding`); `--coding live` encodes and decodes every frame, as a client does.

`--peers pion` makes every caller and callee a pion peer (a process each); `--shared-nats` puts
each side's hosts behind one symmetric NAT, for levels past the ~120 pairs whose NATs of their
own fit the emulated internet.

Usage: .venv/bin/python benchmarks/turn_load.py [--levels 1,10,25,50] [--ramp R]
       [--variants udp,tcp,tls,direct] [--coding replay|live] [--peers KIND] [--shared-nats]
       [--json]
       (as root; on a shared machine under `flock /tmp/simnet-it.lock`)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from _runner import run_benchmark
from rich.console import Console
from rich.table import Table

from simnet.run.load import run_load
from simnet.scenario.load import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "turn-load.yaml"
AUDIO = ["call.duration_s=3", "call.data_bytes=100000"]
CODING = {  # --coding: replayed audio (the load default) or every frame encoded and decoded
    "replay": "call.media={audio: true, coding: replay}",
    "live": "call.media={audio: true}",
}
VARIANTS: dict[str, list[str]] = {
    "udp": ["call.ice_policy=relay", "call.turn_transports=[udp]"],
    "tcp": ["call.ice_policy=relay", "call.turn_transports=[tcp]"],
    "tls": ["call.ice_policy=relay", "call.turn_transports=[tls]"],
    "direct": [
        "nats.home.preset=full-cone",
        "nats.office.preset=full-cone",
        "call.turn=false",
        "call.expect=null",
    ],
}


def measure(
    levels: list[int],
    ramp: float | None,
    variants: list[str],
    coding: str,
    peers: str | None = None,
    shared_nats: bool = False,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "levels": levels,
        "ramp_per_s": ramp,
        "coding": coding,
        "peers": peers,
        "shared_nats": shared_nats,
        "cpus": os.cpu_count(),
    }
    stacks = [f"hosts.alice.peer={peers}", f"hosts.bob.peer={peers}"] if peers else []
    # 400 NATs of their own do not fit the emulated internet: past ~120 pairs, one NAT a side
    shared = ["hosts.alice.own_nat=false", "hosts.bob.own_nat=false"] if shared_nats else []
    for name in variants:
        overrides = [*AUDIO, CODING[coding], *VARIANTS[name], f"hosts.alice.count={max(levels)}",
                     f"hosts.bob.count={max(levels)}", *stacks, *shared]  # fmt: skip
        scenario = load_scenario(SCENARIO, overrides)
        started = time.monotonic()
        figures = run_load(scenario, levels, ramp_per_s=ramp, overrides=overrides)
        result[name] = {
            "wall_s": round(time.monotonic() - started, 1),
            "levels": [f.model_dump() for f in figures],
        }
    return result


def show(result: dict[str, Any], console: Console) -> None:
    columns = (
        ("calls", "concurrency"),
        ("connected", "connected_share"),
        ("p50 ms", "setup_ms_p50"),
        ("p95 ms", "setup_ms_p95"),
        ("relayed", "relay_share"),
        ("alloc fails", "turn_allocation_failures"),
        ("Mbit/s relayed", "relayed_mbps"),
        ("pkt/s relayed", "relayed_pps"),
        ("pkt per coturn CPU-s", "relayed_packets_per_coturn_cpu_s"),
        ("UDP drops TURN", "turn_udp_drops"),
        ("UDP drops peers", "peer_udp_drops"),
        ("coturn CPU %", "coturn_cpu_pct"),
        ("coturn MB", "coturn_rss_mb"),
        ("peers CPU %", "agent_cpu_pct"),
        ("busiest %", "agent_cpu_pct_max"),
        ("busiest 1 s %", "agent_cpu_pct_peak"),
        ("load command 1 s %", "harness_cpu_pct_peak"),
        ("harness limit", "harness_limited"),
        ("emulator limit", "emulator_limited"),
    )
    for name in (k for k in VARIANTS if k in result):
        table = Table(
            title=f"{name}, {result['coding']} audio: {result[name]['wall_s']} s wall "
            f"({result['cpus']} CPUs)"
        )
        for title, _ in columns:
            table.add_column(title)
        for level in result[name]["levels"]:
            table.add_row(*(str(level[key]) for _, key in columns))
        console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,10,25,50")
    parser.add_argument("--ramp", type=float, default=None, help="new calls per second")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--coding", choices=sorted(CODING), default="replay")
    parser.add_argument("--peers", default=None, help="every peer's kind (default: aiortc)")
    parser.add_argument(
        "--shared-nats", action="store_true", help="one NAT per side, not one per host"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    return run_benchmark(
        lambda: measure(levels, args.ramp, variants, args.coding, args.peers, args.shared_nats),
        lambda r: show(r, Console()),
        as_json=args.json,
        log=Console(stderr=True),
    )


if __name__ == "__main__":
    sys.exit(main())

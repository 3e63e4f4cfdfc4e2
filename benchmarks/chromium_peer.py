"""What a Chromium peer costs and measures: warm start, per-call overhead, set-up, CPU, memory.

Why this exists: a Chromium peer is a browser per host, started before the clock like the aiortc
agent. Its figures decide how it is used on a 2-core machine (the targets: warm start
< 1 s, per-call harness overhead < 100 ms) and how far its phase times can be trusted (the error
of mapping the page's clock to the shared one).

Set-up: the two-host LAN of tests/integration/test_chromium_peer.py (alice and bob behind one
port-restricted-cone NAT, coturn and the signaling server public), two `simnet.peer.chromium`
agents started with `PeerAgent.start`, coturn's certificate trusted at launch. Measured:

- warm start: spawn -> ready (the controller's clocks) of the two peers and `--starts` more (one
  at a time, while the two others idle), and the agent's own split: interpreter and imports,
  browser spawn -> DevTools answering, page load and warm-up;
- per call (`--repeat` direct calls after `--warmup`, no transfer, no media): wall (both commands
  written -> both results read) minus `setup_s` (offer created -> data channel open, the
  measurement) = the harness overhead, broken down on the shared clock into dispatch (command ->
  the offerer's call_started: the clock calibration, starting the page's call), pre-offer
  (call_started -> offer_created: peer connection, signaling channel), after-open (dc_open ->
  closing: the "done" exchange), close, collect (the offerer's close -> both results);
- set-up of direct and relayed (policy relay, TURN/UDP) calls, and the clock mapping's error;
- CPU and memory per Chromium peer, from /proc over every process of the agent's process group
  (the agent, the browser and its children): CPU seconds per second idle and during an
  audio + 640x480/30 fps video call, and the proportional set size (PSS: shared pages counted
  once across the group, unlike RSS). psutil is not a dependency; /proc gives the same figures.

Usage: .venv/bin/python benchmarks/chromium_peer.py [--repeat 10] [--warmup 1] [--starts 4]
       [--relay-repeat 5] [--media-s 10] [--json]
       (as root; on a shared machine under `flock /tmp/simnet-it.lock`)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from _runner import BenchmarkError, describe, run_benchmark
from rich.console import Console
from rich.table import Table

from simnet.callspec import MediaSpec, Timeouts, VideoSpec
from simnet.net.builder import Network, emulated_network
from simnet.net.plan import plan_network
from simnet.peer.chromium import agent_argv
from simnet.peer.control.agent import PeerAgent, result_of
from simnet.peer.protocol import CallCommand, CallResult, IceServer
from simnet.scenario.load import scenario_from_dict
from simnet.services.coturn import CoturnHandle, LongTermAuth, TurnConfig, start_coturn
from simnet.services.signaling import SignalingServer

SCENARIO = {
    "name": "chromium-bench",
    "nats": {"home": {"preset": "port-restricted-cone"}},
    "hosts": {"alice": {"behind": "home"}, "bob": {"behind": "home"}},
    "servers": {"turn": {"kind": "turn"}, "signaling": {"kind": "signaling"}},
}
WARM_TARGET_S = 1.0
OVERHEAD_TARGET_MS = 100.0
TICKS = os.sysconf("SC_CLK_TCK")
IDLE_S = 5.0


# --- /proc over a process group ------------------------------------------------------------------


def group_pids(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    found.append(int(entry))
            except (ProcessLookupError, PermissionError):
                pass
    return found


def cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process of the group (children's own, not reaped ones)."""
    total = 0
    for pid in group_pids(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / TICKS


def pss_mb(pgid: int) -> tuple[float, int]:
    """(PSS of the group in MB, number of processes)."""
    total_kb, count = 0, 0
    for pid in group_pids(pgid):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
                    count += 1
                    break
        except OSError:
            continue
    return total_kb / 1024, count


# --- calls --------------------------------------------------------------------------------------


def commands(
    signaling: SignalingServer, turn: CoturnHandle, **fields: Any
) -> tuple[CallCommand, CallCommand]:
    username, password = turn.credentials()
    host = f"{turn.address}:{turn.config.port}"
    common: dict[str, Any] = {
        "signaling_url_base": signaling.base_url,
        "room": uuid.uuid4().hex[:12],
        "ice_servers": [
            IceServer(urls=[f"stun:{host}"]),
            IceServer(urls=[f"turn:{host}?transport=udp"], username=username, credential=password),
        ],
        "ca_file": str(turn.files.cert),
        "data_bytes": 0,
        "rtt_probes": 0,
        "timeouts": Timeouts(),
        **fields,
    }
    return (
        CallCommand(role="offer", peer="alice", remote_peer="bob", **common),
        CallCommand(role="answer", peer="bob", remote_peer="alice", **common),
    )


async def one_call(
    alice: PeerAgent, bob: PeerAgent, offer: CallCommand, answer: CallCommand
) -> tuple[float, float, CallResult, CallResult, list[dict[str, Any]]]:
    """(written, collected, offerer's result, answerer's result, offerer's events)."""
    written = time.monotonic()
    alice_events, bob_events = await asyncio.gather(alice.call(offer), bob.call(answer))
    collected = time.monotonic()
    a, b = result_of(alice_events), result_of(bob_events)
    for result in (a, b):
        if result.error is not None:
            raise BenchmarkError(f"{result.role}: {result.error}: {result.error_detail}")
    return written, collected, a, b, alice_events


def segments(
    written: float, collected: float, a: CallResult, events: list[dict[str, Any]]
) -> dict[str, float]:
    t = a.phase_t
    closing = next(e["t"] for e in events if e["event"] == "closing")
    close_s = a.close_s or 0.0
    return {
        "dispatch": (t["call_started"] - written) * 1000,
        "pre_offer": (t["offer_created"] - t["call_started"]) * 1000,
        "setup": (a.setup_s or 0.0) * 1000,
        "after_open": (closing - t["dc_open"]) * 1000,
        "close": close_s * 1000,
        "collect": (collected - closing - close_s) * 1000,
        "wall": (collected - written) * 1000,
        "overhead": ((collected - written) - (a.setup_s or 0.0)) * 1000,
    }


async def measure_async(args: argparse.Namespace, net: Network) -> dict[str, Any]:
    turn = await start_coturn(net, "turn", TurnConfig(auth=LongTermAuth.single("alice", "pw")))
    signaling = SignalingServer(net.ns("signaling"), net.address("signaling"))
    await signaling.start()
    agents: list[PeerAgent] = []
    try:
        warm = []
        for host in ("alice", "bob"):
            ns = net.ns(host)
            argv = agent_argv(ns, net.run.workdir / f"chromium-{host}", trust=[turn.files.cert])
            agent = await PeerAgent.start(net.run, ns, argv=argv, timeout_s=60)
            agents.append(agent)
            ready = agent.ready_event
            warm.append(
                {
                    "ready_s": agent.ready_s,
                    "imports_s": ready["launch_s"] - ready["browser_s"],
                    "browser_s": ready["browser_s"],
                    "page_warm_s": ready["warm_s"],
                    "version": ready["peer_version"],
                }
            )
        alice, bob = agents
        for _ in range(args.starts):  # more warm starts of a third peer, for a distribution
            ns = net.ns("alice")
            argv = agent_argv(ns, net.run.workdir / "chromium-extra", trust=[turn.files.cert])
            extra = await PeerAgent.start(net.run, ns, argv=argv, timeout_s=60)
            ready = extra.ready_event
            warm.append(
                {
                    "ready_s": extra.ready_s,
                    "imports_s": ready["launch_s"] - ready["browser_s"],
                    "browser_s": ready["browser_s"],
                    "page_warm_s": ready["warm_s"],
                    "version": ready["peer_version"],
                }
            )
            await extra.close()
        idle0 = {a.pid: cpu_seconds(a.pid) for a in agents}
        await asyncio.sleep(IDLE_S)
        idle_cpu = [(cpu_seconds(a.pid) - idle0[a.pid]) / IDLE_S for a in agents]
        idle_mem = [pss_mb(a.pid) for a in agents]

        for _ in range(args.warmup):
            await one_call(alice, bob, *commands(signaling, turn))
        rows = []
        clock_errors = []
        for _ in range(args.repeat):
            written, collected, a, b, events = await one_call(
                alice, bob, *commands(signaling, turn)
            )
            rows.append(segments(written, collected, a, events))
            clock_errors += [a.clock_error_ms or 0.0, b.clock_error_ms or 0.0]
        relay_setup = []
        for _ in range(args.relay_repeat):
            offer, answer = commands(signaling, turn, ice_transport_policy="relay")
            _, _, a, _, _ = await one_call(alice, bob, offer, answer)
            assert a.selected_pair is not None and a.selected_pair.local.type == "relay"
            relay_setup.append((a.setup_s or 0.0) * 1000)

        media = MediaSpec(audio=True, video=VideoSpec(width=640, height=480, fps=30))
        offer, answer = commands(signaling, turn, media=media, duration_s=args.media_s)
        call_cpu0 = {a.pid: cpu_seconds(a.pid) for a in agents}
        started = time.monotonic()
        _, _, a, b, _ = await one_call(alice, bob, offer, answer)
        elapsed = time.monotonic() - started
        call_cpu = [(cpu_seconds(x.pid) - call_cpu0[x.pid]) / elapsed for x in agents]
        call_mem = [pss_mb(x.pid) for x in agents]
        media_figures = {
            f"{r.role}_{m.kind}_fps": m.received.fps
            for r in (a, b)
            for m in r.media
            if m.received is not None
        }
    finally:
        for agent in agents:
            await agent.close()
        signaling.close()
        await signaling.wait_closed()
    return {
        "machine": {"cpus": os.cpu_count(), "load1": os.getloadavg()[0]},
        "warm_start": {
            key: describe([w[key] for w in warm], 3)
            for key in ("ready_s", "imports_s", "browser_s", "page_warm_s")
        },
        "version": warm[0]["version"],
        "per_call": {key: describe([r[key] for r in rows], 1) for key in rows[0]} if rows else {},
        "relay_setup_ms": describe(relay_setup, 1),
        "clock_error_ms": describe(clock_errors, 3),
        "idle": {
            "cpu_per_s": idle_cpu,
            "pss_mb": [m for m, _ in idle_mem],
            "processes": [n for _, n in idle_mem],
        },
        "media_call": {
            "cpu_per_s": call_cpu,
            "pss_mb": [m for m, _ in call_mem],
            "seconds": elapsed,
            **media_figures,
        },
        "targets": {"warm_start_s": WARM_TARGET_S, "overhead_ms": OVERHEAD_TARGET_MS},
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    plan = plan_network(scenario_from_dict(SCENARIO))
    with emulated_network(plan, label="bench-chromium") as net:
        return asyncio.run(measure_async(args, net))


def show(result: dict[str, Any]) -> None:
    console = Console()
    table = Table(f"warm start (s), {result['version']}", "median", "p10", "p90", "max", "n")
    for key, d in result["warm_start"].items():
        table.add_row(key, *(str(d[k]) for k in ("median", "p10", "p90", "max", "n")))
    console.print(table)
    table = Table("per call (ms)", "median", "p10", "p90", "max")
    for key, d in result["per_call"].items():
        table.add_row(key, *(str(d[k]) for k in ("median", "p10", "p90", "max")))
    console.print(table)
    relay, clock = result["relay_setup_ms"], result["clock_error_ms"]
    console.print(f"relay set-up: median {relay['median']} ms (n={relay['n']})", markup=False)
    console.print(
        f"clock mapping error: median +-{clock['median']} ms, max +-{clock['max']} ms",
        markup=False,
    )
    idle, call = result["idle"], result["media_call"]
    console.print(
        f"idle: CPU {idle['cpu_per_s']} s/s, PSS {idle['pss_mb']} MB, "
        f"processes {idle['processes']}",
        markup=False,
    )
    console.print(f"media call: CPU {call['cpu_per_s']} s/s, PSS {call['pss_mb']} MB", markup=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--starts", type=int, default=4, help="extra warm starts measured")
    parser.add_argument("--relay-repeat", type=int, default=5)
    parser.add_argument("--media-s", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    return run_benchmark(lambda: measure(args), show, as_json=args.json, log=Console(stderr=True))


if __name__ == "__main__":
    sys.exit(main())

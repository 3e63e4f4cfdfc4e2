"""Link impairment fidelity: configured versus measured delay and loss, and the NFQUEUE ceiling.

Why this exists: a WebRTC result over an emulated link is only as good as the emulation, and on
kernels without sch_netem the delay line is a Python process. Users need to know how close the
delay and loss are to what they configured, and at what packet rate the emulator, not the link,
starts to shape their results. This script measures, on the machine it runs on:

  * delay: for 1, 5, 20, 100 and 300 ms links, the one-way delay error of UDP probes at the
    median, p99, p99.9 and max (what a user gets at the tail), both ends stamped by the kernel
    (`simnet.net.impair.measure`: the send as it enters the device queue, the arrival as it is
    delivered to the socket; one CLOCK_MONOTONIC for all namespaces), next to the same probes
    over an unimpaired link (the path without a delay line);
  * loss: for 1, 5 and 20 %, the measured loss of 5000 probes, dropped by nftables (no delay
    configured) and by the delay line (1 ms delay configured), with the binomial 99.9 % interval;
  * ceiling: a 10 ms link loaded by iperf3 at growing packet rates (64-byte UDP; C, so the load
    generator is not what saturates), probed meanwhile at 500 probes/s: the delay the helper
    adds on top of the 10 ms and of an unimpaired link under the same load (median, p99), the
    load's loss, and the helper's CPU (utime + stime, % of one core). The ceiling is the first
    rate at which the median added delay exceeds 1 ms.

Everything runs in one network built once (simnet's own builder, so its run id, cleanup and
teardown apply); nothing is left behind on any exit. The backend is whatever simnet picks
(`SIMNET_LINK_BACKEND` forces one); other processes on the machine are not paused, so the load
average is printed with the results.

Usage: .venv/bin/python benchmarks/impairment_fidelity.py [--quick] [--json] [--parts ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from scipy.stats import binom

from simnet.net import netns
from simnet.net.builder import Network, emulated_network
from simnet.net.impair.chooser import link_targets
from simnet.net.impair.measure import Probes, probe
from simnet.net.plan import plan_network
from simnet.net.process import spawn
from simnet.quantile import quantile
from simnet.scenario import scenario_from_dict

DELAYS_MS = (1, 5, 20, 100, 300)
LOSSES_PCT = (1, 5, 20)
RATES_PPS = (1000, 5000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 120_000, 150_000)
CEILING_DELAY_MS = 10.0
PROBE_BYTES = 64
IPERF_PORTS = {"base": 5298, "line": 5299}  # a server each: iperf3 serves one test at a time
_T = TypeVar("_T")


def scenario() -> dict[str, Any]:
    hosts: dict[str, Any] = {"sink": {}, "base": {}}
    hosts |= {f"d{d}": {"link": {"delay_ms": d}} for d in DELAYS_MS}
    hosts |= {f"l{p}n": {"link": {"loss_pct": p}} for p in LOSSES_PCT}
    hosts |= {f"l{p}h": {"link": {"delay_ms": 1, "loss_pct": p}} for p in LOSSES_PCT}
    hosts["line"] = {"link": {"delay_ms": CEILING_DELAY_MS, "queue_packets": 100_000}}
    return {"name": "impairment-fidelity", "hosts": hosts}


def concurrently(jobs: dict[str, Callable[[], _T]]) -> dict[str, _T]:
    results: dict[str, _T] = {}

    def run(name: str, job: Callable[[], _T]) -> None:
        results[name] = job()

    threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def pct(values: Sequence[float], q: float) -> float:
    """The `q`-quantile of a probe's delays (`simnet.quantile`; every probe has some)."""
    figure = quantile(values, q)
    if figure is None:
        raise ValueError("no probe arrived: no delay to measure")
    return figure


def to_sink(
    net: Network, host: str, count: int, interval_s: float, settle_s: float = 0.5
) -> Probes:
    sink = net.ns("sink")
    return probe(
        net.ns(host), sink, str(net.address("sink")), count, interval_s, PROBE_BYTES, settle_s
    )


def delays(net: Network, count: int) -> list[dict[str, Any]]:
    hosts = ["base", *(f"d{d}" for d in DELAYS_MS)]
    jobs: dict[str, Callable[[], Probes]] = {
        h: partial(to_sink, net, h, count, 0.002) for h in hosts
    }
    results = concurrently(jobs)
    rows = []
    for host, d in [("base", 0), *((f"d{d}", d) for d in DELAYS_MS)]:
        measured = results[host].delays_ms()
        rows.append(
            {
                "configured_ms": d,
                "median_ms": pct(measured, 0.5),
                "min_error_ms": min(measured) - d,
                "median_error_ms": pct(measured, 0.5) - d,
                "p99_error_ms": pct(measured, 0.99) - d,
                "p99_9_error_ms": pct(measured, 0.999) - d,
                "max_error_ms": max(measured) - d,
                "lost": results[host].lost,
                "kernel_stamped": results[host].all_kernel,
            }
        )
    return rows


def losses(net: Network, count: int) -> list[dict[str, Any]]:
    hosts = [f"l{p}{k}" for p in LOSSES_PCT for k in "nh"]
    jobs: dict[str, Callable[[], Any]] = {
        h: partial(to_sink, net, h, count, 0.00025) for h in hosts
    }
    results = concurrently(jobs)
    rows = []
    for p in LOSSES_PCT:
        low, high = binom.interval(0.999, count, p / 100)
        for kind, label in (("n", "nftables"), ("h", "delay line")):
            lost = results[f"l{p}{kind}"].lost
            rows.append(
                {
                    "configured_pct": p,
                    "by": label,
                    "measured_pct": 100 * lost / count,
                    "error_pct": 100 * lost / count - p,
                    "inside_99_9": bool(low <= lost <= high),
                    "interval_pct": [100 * low / count, 100 * high / count],
                }
            )
    return rows


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _read_in(ns: str, path: str) -> str:
    """A /proc/thread-self/net file: what namespace `ns` shows (it follows the thread)."""
    with netns.entered(ns), open(path) as f:
        return f.read()


def queue_drops(ns: str, queue: int) -> int:
    """Packets the kernel dropped for NFQUEUE `queue`: queue full plus netlink socket full."""
    for line in _read_in(ns, "/proc/thread-self/net/netfilter/nfnetlink_queue").splitlines():
        fields = line.split()
        if fields and int(fields[0]) == queue:
            return int(fields[5]) + int(fields[6])
    return 0


def receive_drops(ns: str) -> int:
    """UDP datagrams dropped because a receiving socket's buffer was full (RcvbufErrors)."""
    lines = [line.split() for line in _read_in(ns, "/proc/thread-self/net/snmp").splitlines()]
    udp = [fields for fields in lines if fields and fields[0] == "Udp:"]
    return int(udp[1][udp[0].index("RcvbufErrors")])


def load(net: Network, host: str, pps: int, duration_s: float) -> subprocess.Popen[bytes]:
    """iperf3 sending `pps` 64-byte UDP datagrams from `host` to the sink: C, not Python, so
    the load generator is not what saturates first."""
    kbit = pps * PROBE_BYTES * 8 / 1000  # iperf3 -b counts payload bits
    argv = ["iperf3", "-c", str(net.address("sink")), "-p", str(IPERF_PORTS[host]), "-u", "-J"]
    argv += ["-l", str(PROBE_BYTES), "-b", f"{kbit:.0f}K", "-t", f"{duration_s:g}"]
    return spawn(net.run, net.ns(host), argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def loaded_probe(net: Network, host: str, pps: int, duration_s: float) -> dict[str, Any]:
    """Probe delays (500/s) while iperf3 drives `pps` through `host`'s link."""
    client = load(net, host, pps, duration_s)
    time.sleep(0.3)  # let iperf3 connect and reach its rate before probing
    probes = to_sink(net, host, int((duration_s - 0.6) * 500), 0.002, 0.3)
    out, _ = client.communicate(timeout=duration_s + 30)
    try:
        summary = json.loads(out)["end"]["sum"]
        lost_pct, sent_pps = summary["lost_percent"], summary["packets"] / summary["seconds"]
    except (ValueError, KeyError, ZeroDivisionError):
        lost_pct, sent_pps = float("nan"), float("nan")
    return {"delays": probes.delays_ms(), "lost_pct": lost_pct, "sent_pps": sent_pps}


def ceiling(net: Network, duration_s: float, rates: Sequence[int]) -> list[dict[str, Any]]:
    helper = int(net.run.info["links"]["nodes"]["line"]["helper_pid"])
    # `line` is on the internet: its up queue is fed in the core's namespace (see rules.py)
    line = next(t for t in link_targets(net.plan, net.run.info["nodes"]) if t.node == "line")
    queue_ns, queue = line.queue_namespaces("up")[0], line.queue("up")
    servers = [
        spawn(
            net.run,
            net.ns("sink"),
            ["iperf3", "-s", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in IPERF_PORTS.values()
    ]
    time.sleep(0.3)  # iperf3 has no readiness signal; a benchmark may wait, a build may not
    rows = []
    try:
        for pps in rates:
            base = loaded_probe(net, "base", pps, duration_s)
            before, start = cpu_seconds(helper), time.monotonic()
            drops = queue_drops(queue_ns, queue), receive_drops(net.ns("sink"))
            loaded = loaded_probe(net, "line", pps, duration_s)
            cpu = (cpu_seconds(helper) - before) / (time.monotonic() - start)
            queue_dropped = queue_drops(queue_ns, queue) - drops[0]
            receiver_dropped = receive_drops(net.ns("sink")) - drops[1]
            base_median = pct(base["delays"], 0.5)
            added = [d - CEILING_DELAY_MS - base_median for d in loaded["delays"]]
            row = {
                "pps": pps,
                "sent_pps": loaded["sent_pps"],
                "baseline_median_ms": base_median,
                "baseline_p99_ms": pct(base["delays"], 0.99),
                "added_median_ms": pct(added, 0.5),
                "added_p99_ms": pct(added, 0.99),
                "added_max_ms": max(added),
                "lost_pct": loaded["lost_pct"],
                "baseline_lost_pct": base["lost_pct"],
                "helper_cpu_pct": 100 * cpu,
                "queue_dropped": queue_dropped,  # by the kernel: the helper did not keep up
                "receiver_dropped": receiver_dropped,  # by the sink's sockets: iperf3 did not
            }
            rows.append(row)
            if row["added_median_ms"] > 5 or not row["lost_pct"] <= 20:
                break
    finally:
        for server in servers:
            server.terminate()
            server.wait()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer probes, shorter steps")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--parts",
        default="delays,losses,ceiling",
        help="comma-separated subset of delays, losses, ceiling (default: all)",
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts <= {"delays", "losses", "ceiling"}:
        print(f"impairment_fidelity: unknown part in --parts {args.parts!r}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("impairment_fidelity: needs root (it builds network namespaces)", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    plan = plan_network(scenario_from_dict(scenario()))
    started = time.monotonic()
    with emulated_network(plan, label="bench-impair") as net:
        build_s = time.monotonic() - started
        out: dict[str, Any] = {
            "backend": net.run.info["links"]["backend"],
            "build_s": build_s,
            "impaired_links": len(net.run.info["links"]["nodes"]),
            "delays": delays(net, 300 if args.quick else 1000) if "delays" in parts else [],
            "losses": losses(net, 2000 if args.quick else 5000) if "losses" in parts else [],
            "ceiling": (
                ceiling(net, 1.0 if args.quick else 2.0, RATES_PPS) if "ceiling" in parts else []
            ),
        }
    out["load_average_before"] = load_before
    out["load_average_after"] = os.getloadavg()
    out["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release()}
    over = [r["pps"] for r in out["ceiling"] if r["added_median_ms"] > 1.0]
    out["ceiling_pps"] = over[0] if over else None
    tail = [r["pps"] for r in out["ceiling"] if r["added_p99_ms"] > 1.0]
    out["p99_over_1ms_from_pps"] = tail[0] if tail else None
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"backend {out['backend']}, {out['impaired_links']} links built in {build_s:.2f} s")
    print(f"load average before {load_before[0]:.2f}, after {out['load_average_after'][0]:.2f}")
    print("\ndelay   configured   median  min err    error   p99 err  p99.9 err   max err  kernel")
    for r in out["delays"]:
        print(
            f"        {r['configured_ms']:>7} ms {r['median_ms']:>8.3f} {r['min_error_ms']:>+8.3f} "
            f"{r['median_error_ms']:>+8.3f} {r['p99_error_ms']:>+9.3f} "
            f"{r['p99_9_error_ms']:>+10.3f} {r['max_error_ms']:>+9.3f}  {r['kernel_stamped']}"
        )
    print("\nloss    configured   by           measured    error   in 99.9% interval")
    for r in out["losses"]:
        print(
            f"        {r['configured_pct']:>7} %  {r['by']:<11} {r['measured_pct']:>7.2f} % "
            f"{r['error_pct']:>+7.2f}   {r['inside_99_9']}"
        )
    print(
        "\nceiling    pps     sent  base med  base p99  added med  added p99  added max"
        "  lost % (base)  queue drops  rcv drops  CPU %"
    )
    for r in out["ceiling"]:
        print(
            f"      {r['pps']:>7} {r['sent_pps']:>8.0f} {r['baseline_median_ms']:>9.3f} "
            f"{r['baseline_p99_ms']:>9.3f} {r['added_median_ms']:>10.3f} {r['added_p99_ms']:>10.3f}"
            f" {r['added_max_ms']:>10.3f} {r['lost_pct']:>7.2f} ({r['baseline_lost_pct']:>5.2f})"
            f" {r['queue_dropped']:>12}"
            f" {r['receiver_dropped']:>10} {r['helper_cpu_pct']:>6.1f}"
        )
    print(f"\nceiling (median added delay > 1 ms): {out['ceiling_pps'] or 'not reached'} pps")
    print(f"first rate with p99 added delay > 1 ms: {out['p99_over_1ms_from_pps'] or 'none'} pps")
    return 0


if __name__ == "__main__":
    sys.exit(main())

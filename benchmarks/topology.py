"""Build + teardown time of a two-NAT, six-namespace network: simnet versus a plain shell script.

Why this exists: every simnet run starts by building a network and ends by tearing it down, so
that cost is paid once per test case of a matrix. Plain `ip` commands took about 140 ms for such a
topology (docs/kernel-notes.md#build-speed); netlink calls from one process should do better.
The target is that simnet takes at most half of the script's time; this script measures whether
it does, on the machine it runs on.

What is compared:
  * simnet: `plan_network` + `Run.__enter__` + `build` (build time), then leaving the `Run`
    context (teardown time), all inside this already-running Python process. Python start-up and
    imports are not counted: simnet is a library that a long-lived harness calls.
  * script: a bash script generated from the *same plan* (namespaces, veths, bridges, addresses,
    routes, sysctls, and the exact rulesets of `render_router`), run as one `bash` subprocess for
    the build and one for the teardown (`ip netns del`). The script is written the way a person
    would write it: one `ip` command per object, one `sysctl` per namespace and phase, one
    `nft -f` per router. Generating it is not timed.

The two methods are interleaved in every repetition, and their order alternates between
repetitions, so slow background work (the kernel frees deleted namespaces asynchronously) and
drift in machine load hit both alike. After the first repetition's builds (untimed) the benchmark
checks that both networks work (alice and bob each ping the server through their NAT) and that
they are the same network (links, addresses, routes, sysctls and nftables rulesets, compared node
by node); it exits non-zero if either check fails, because timing two different things, or a
broken network, would be meaningless.

Every namespace it creates carries a prefix unique to this invocation (`sn-bench<token>r` for
simnet, whose run ids are `bench<token>r<repetition>`, so the prefix can never match another run's
6-hex-digit id; `snb-<token>-` for the script) and is removed on every exit path, Ctrl-C and
SIGTERM included. Other runs' namespaces are never touched.

Where the time goes: every repetition also records the time of each kind of kernel operation,
on both sides (simnet's builder through `simnet.net.builder.timing_build`; the script through
a bash function that stamps each command with `$EPOCHREALTIME`, a builtin: no extra process),
printed as a second table (medians over the repetitions, per build), with simnet's CPU time
per operation beside its wall time (the difference is time spent waiting: kernel locks, RCU
grace periods, another process on the CPU). Machines of one kind differ by 3x in build time;
this table says which operations make the difference.

Usage: .venv/bin/python benchmarks/topology.py [--repeat 20] [--settle 0.2] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _runner import BenchmarkError, describe, run_benchmark
from rich.console import Console
from rich.table import Table

from simnet.net import netns
from simnet.net.builder import build, timing_build
from simnet.net.nftables import render_router
from simnet.net.plan import NetworkPlan, plan_network
from simnet.net.registry import PREFIX, STATE_DIR, Run, remove_namespaces
from simnet.quantile import quantile
from simnet.scenario import scenario_from_dict
from simnet.signals import signals_deferred, sigterm_raises

SCENARIO: dict[str, Any] = {
    "name": "bench-two-nats",
    "description": "alice behind a port-restricted-cone NAT, bob behind a symmetric one",
    "nats": {
        "home": {"preset": "port-restricted-cone"},
        "carrier": {"preset": "symmetric"},
    },
    "hosts": {"alice": {"behind": "home"}, "bob": {"behind": "carrier"}},
    "servers": {"stun": {"kind": "stun"}},
}
PINGERS = ("alice", "bob")  # each pings the server through its own NAT
SERVER = "stun"
TARGET_RATIO = 0.5
PHASES = ("build", "teardown", "total")
METHODS = ("simnet", "script")

# Sysctls simnet writes in every namespace before any interface exists (see builder.py), and
# those it writes in a translating router after its ruleset is loaded.
BASE_SYSCTLS = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
)
FORWARD_SYSCTL = "net.ipv4.ip_forward"
CONNTRACK_SYSCTLS = (
    "net.netfilter.nf_conntrack_udp_timeout",
    "net.netfilter.nf_conntrack_udp_timeout_stream",
)
CHECKED_SYSCTLS = (*(k for k, _ in BASE_SYSCTLS), FORWARD_SYSCTL, *CONNTRACK_SYSCTLS)


# --- the equivalent shell script -----------------------------------------------------------


@dataclass(frozen=True)
class Script:
    """The generated build and teardown scripts, and the namespaces they own."""

    build_path: Path
    teardown_path: Path
    namespaces: dict[str, str]  # node -> namespace
    commands: int  # commands in the build script, to show what the script pays per process


def render_script(plan: NetworkPlan, prefix: str, workdir: Path) -> Script:
    """Write build/teardown scripts doing what `simnet.net.builder.build` does, in its order.

    The order matters for equivalence, not only for speed: sysctls go in before interfaces exist
    (so `default.*` values apply to them), and the conntrack timeouts go in after the ruleset
    (loading rules with `ct` expressions is what brings conntrack into the namespace).
    """
    ns = {name: f"{prefix}{name}" for name in plan.nodes}
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        "# generated by benchmarks/topology.py from a simnet plan",
        "set -eu",
        "# _t CLASS CMD...: run CMD and print its class, start and end ($EPOCHREALTIME, a builtin)",
        '_t() { local c=$1 s=$EPOCHREALTIME; shift; "$@"; echo "$c $s $EPOCHREALTIME"; }',
    ]

    lines.append("# namespaces, and their sysctls before any interface exists")
    for node in plan.nodes.values():
        settings = [*BASE_SYSCTLS, (FORWARD_SYSCTL, "1" if node.forwarding else "0")]
        lines.append(f"_t netns-add ip netns add {q(ns[node.name])}")
        lines.append(
            f"_t sysctls ip netns exec {q(ns[node.name])} sysctl -q -w "
            + " ".join(f"{k}={v}" for k, v in settings)
        )

    lines.append("# cables")
    for veth in plan.veths:
        lines.append(
            f"_t veth-add ip -n {q(ns[veth.a])} link add {q(veth.a_if)} type veth "
            f"peer name {q(veth.b_if)} netns {q(ns[veth.b])}"
        )

    lines.append("# links: loopback, bridges, bridge ports, addresses, up")
    for node in plan.nodes.values():
        n = q(ns[node.name])
        lines.append(f"_t link-up ip -n {n} link set lo up")
        lines += [f"_t bridge-add ip -n {n} link add {q(b)} type bridge" for b in node.bridges]
        lines += [
            f"_t bridge-port ip -n {n} link set {q(v.b_if)} master {q(v.b_bridge)}"
            for v in plan.veths
            if v.b == node.name and v.b_bridge
        ]
        ifnames = [v.a_if for v in plan.veths if v.a == node.name]
        ifnames += [v.b_if for v in plan.veths if v.b == node.name]
        for ifname in [*node.bridges, *ifnames]:
            lines += [
                f"_t addr-add ip -n {n} addr add {address.with_prefixlen} dev {q(ifname)}"
                for address in node.addresses.get(ifname, [])
            ]
            lines.append(f"_t link-up ip -n {n} link set {q(ifname)} up")

    lines.append("# routes (`proto static`: what pyroute2 sets, where `ip` would say `boot`)")
    for node in plan.nodes.values():
        n = q(ns[node.name])
        for route in node.routes:
            if route.blackhole:
                lines.append(f"_t route-add ip -n {n} route add blackhole {route.dst} proto static")
                continue
            spec = str(route.dst)
            if route.via is not None:
                spec += f" via {route.via}"
            if route.dev is not None:
                spec += f" dev {q(route.dev)}"
            if route.via is None:
                spec += " scope link"
            lines.append(f"_t route-add ip -n {n} route add {spec} proto static")

    lines.append("# NAT rulesets, then conntrack timeouts")
    for node in plan.nodes.values():
        if node.router is None:
            continue
        ruleset = render_router(node.router)
        if not ruleset:
            continue
        rules = workdir / f"{node.name}.nft"
        rules.write_text(ruleset)
        lines.append(f"_t nft-load ip netns exec {q(ns[node.name])} nft -f {q(str(rules))}")
        if node.router.behavior.translates:
            timeout = node.router.behavior.udp_timeout_s
            lines.append(
                f"_t conntrack-sysctls ip netns exec {q(ns[node.name])} sysctl -q -w "
                + " ".join(f"{k}={timeout}" for k in CONNTRACK_SYSCTLS)
            )

    commands = sum(1 for line in lines if line.startswith("_t "))
    build_path = workdir / "build.sh"
    build_path.write_text("\n".join(lines) + "\n")

    # Teardown removes every namespace even if one removal fails, and reports the failure.
    teardown = ["#!/bin/bash", "rc=0"]
    teardown += [f"ip netns del {q(name)} || rc=1" for name in ns.values()]
    teardown.append("exit $rc")
    teardown_path = workdir / "teardown.sh"
    teardown_path.write_text("\n".join(teardown) + "\n")
    return Script(build_path, teardown_path, ns, commands)


def run_bash(path: Path, what: str) -> tuple[float, dict[str, float]]:
    """Run one script as one `bash` process: its wall time in seconds, and the seconds per
    command class it printed (`_t`). Raises if it fails."""
    start = time.perf_counter()
    done = subprocess.run(["bash", str(path)], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise BenchmarkError(
            f"the {what} script {path} failed with status {done.returncode}:\n{done.stderr.strip()}"
        )
    ops: dict[str, float] = {}
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3:
            ops[fields[0]] = ops.get(fields[0], 0.0) + float(fields[2]) - float(fields[1])
            ops["#" + fields[0]] = ops.get("#" + fields[0], 0) + 1
    return elapsed, ops


# --- checks: does each network work, and are they the same network? -------------------------


def _ip_json(ns: str, *args: str) -> Any:
    out = subprocess.run(
        ["ip", "-j", "-n", ns, *args], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out or "[]")


def verify_connectivity(plan: NetworkPlan, namespaces: dict[str, str], method: str) -> None:
    """Ping the server from every host behind a NAT; raise if any ping is lost."""
    target = str(plan.nodes[SERVER].address)
    for host in PINGERS:
        done = subprocess.run(
            ["ip", "netns", "exec", namespaces[host], "ping", "-n", "-c1", "-W1", target],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BenchmarkError(
                f"{method}: {host} ({namespaces[host]}) cannot ping {SERVER} at {target}:\n"
                f"{(done.stdout + done.stderr).strip()}"
            )


def snapshot(plan: NetworkPlan, namespaces: dict[str, str]) -> dict[str, Any]:
    """What each node's namespace holds, without what legitimately differs (indexes, MACs)."""
    state: dict[str, Any] = {}
    for name in plan.nodes:
        ns = namespaces[name]
        links = sorted(
            (
                link["ifname"],
                link.get("linkinfo", {}).get("info_kind", link.get("link_type")),
                link.get("master"),
                "UP" in link.get("flags", []),
                link.get("mtu"),
            )
            for link in _ip_json(ns, "-d", "link", "show")
        )
        addresses = sorted(
            (a["ifname"], f"{i['local']}/{i['prefixlen']}", i.get("scope"))
            for a in _ip_json(ns, "addr", "show")
            for i in a.get("addr_info", [])
            if i.get("family") == "inet"
        )
        routes = sorted(
            json.dumps(r, sort_keys=True) for r in _ip_json(ns, "route", "show", "table", "all")
        )
        sysctls = subprocess.run(
            ["ip", "netns", "exec", ns, "sysctl", "-e", *CHECKED_SYSCTLS],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        ruleset = subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "list", "ruleset"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        state[name] = {
            "links": links,
            "addresses": addresses,
            "routes": routes,
            "sysctls": sorted(sysctls),
            "nftables": ruleset,
        }
    return state


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable differences between two snapshots (empty: the same network)."""
    out = []
    for node in sorted(set(a) | set(b)):
        for key in sorted(set(a.get(node, {})) | set(b.get(node, {}))):
            left, right = a.get(node, {}).get(key), b.get(node, {}).get(key)
            if left != right:
                out.append(f"{node}.{key}:\n  simnet: {left!r}\n  script: {right!r}")
    return out


# --- one repetition of each method ------------------------------------------------------------


@dataclass
class Sample:
    build: float
    teardown: float
    ops: dict[str, float] = field(default_factory=dict)  # seconds per kind of operation
    counts: dict[str, int] = field(default_factory=dict)  # operations of each kind
    cpu: dict[str, float] = field(default_factory=dict)  # simnet: CPU seconds per kind

    @property
    def total(self) -> float:
        return self.build + self.teardown


def simnet_once(run_id: str, check: bool) -> tuple[Sample, dict[str, Any] | None]:
    """Build and tear down with simnet; with `check`, verify and snapshot in between (untimed)."""
    scenario = scenario_from_dict(SCENARIO)
    start = time.perf_counter()
    with Run("benchmark", run_id=run_id) as run:
        plan = plan_network(scenario)
        with timing_build() as times:
            net = build(plan, run)
        built = time.perf_counter()
        state = None
        if check:
            namespaces = {name: net.ns(name) for name in plan.nodes}
            verify_connectivity(plan, namespaces, "simnet")
            state = snapshot(plan, namespaces)
        leaving = time.perf_counter()
    done = time.perf_counter()
    ops = times.exclusive()
    ops["(outside the builder: plan, run state)"] = built - start - sum(ops.values())
    cpu = times.exclusive(cpu=True)
    return Sample(built - start, done - leaving, ops, times.counts, cpu), state


def script_once(
    script: Script, plan: NetworkPlan, check: bool
) -> tuple[Sample, dict[str, Any] | None]:
    """Run the build script, optionally verify and snapshot (untimed), run the teardown script."""
    try:
        build_s, ops = run_bash(script.build_path, "build")
        state = None
        if check:
            verify_connectivity(plan, script.namespaces, "script")
            state = snapshot(plan, script.namespaces)
    except BaseException:
        remove_script_namespaces(script.namespaces.values())
        raise
    teardown_s, _ = run_bash(script.teardown_path, "teardown")
    counts = {k[1:]: int(v) for k, v in ops.items() if k.startswith("#")}
    ops = {k: v for k, v in ops.items() if not k.startswith("#")}
    ops["(bash start, between commands)"] = build_s - sum(ops.values())
    return Sample(build_s, teardown_s, ops, counts), state


# --- cleanup --------------------------------------------------------------------------------


def remove_script_namespaces(names: Sequence[str] | Any) -> None:
    """`ip netns del` whichever of `names` still exist, ignoring ones already gone."""
    for name in names:
        if netns.exists(name):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@contextlib.contextmanager
def leave_nothing_behind(simnet_prefix: str, script_prefix: str) -> Iterator[None]:
    """On any exit (error, Ctrl-C, SIGTERM), remove every namespace either method left.

    simnet's `Run` already tears down on leaving its context; this sweep is the safety net for
    an interrupt landing between two steps. It runs with signals blocked so that a second Ctrl-C
    cannot cut it short.
    """
    try:
        with sigterm_raises():
            yield
    finally:
        with signals_deferred():
            remove_namespaces(netns.list_names(simnet_prefix))
            remove_script_namespaces(netns.list_names(script_prefix))
            for path in STATE_DIR.glob(f"{simnet_prefix.removeprefix(PREFIX)}*.json"):
                path.unlink(missing_ok=True)


# --- statistics and output ------------------------------------------------------------------


def summary(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """Median, p10 and p90 in milliseconds, per phase."""
    out = {}
    for phase in PHASES:
        figures = describe([getattr(s, phase) * 1000 for s in samples], digits=2)
        out[phase] = {f"{k}_ms": float(figures[k] or 0) for k in ("median", "p10", "p90")}
    return out


def operations(samples: Sequence[Sample], cpu: bool = False) -> dict[str, float]:
    """Median milliseconds per build of each kind of operation (wall, or with `cpu` the
    builder thread's CPU time), largest first."""
    kinds = {k for s in samples for k in (s.cpu if cpu else s.ops)}
    medians = {
        k: quantile(((s.cpu if cpu else s.ops).get(k, 0.0) * 1000 for s in samples), 0.5) or 0.0
        for k in kinds
    }
    return {k: round(v, 3) for k, v in sorted(medians.items(), key=lambda kv: -kv[1])}


def print_table(result: dict[str, Any]) -> None:
    """One row per method and phase: median, p10, p90 (ms) and simnet's share of the script's."""
    console = Console()
    table = Table(
        title=(
            f"build + teardown of {len(result['nodes'])} namespaces, "
            f"{result['repeat']} repetitions (ms)"
        )
    )
    for column in ("phase", "method", "median", "p10", "p90", "simnet/script"):
        table.add_column(column, justify="left" if column in ("phase", "method") else "right")
    for phase in PHASES:
        for method in METHODS:
            s = result[method][phase]
            table.add_row(
                phase if method == METHODS[0] else "",
                method,
                f"{s['median_ms']:.1f}",
                f"{s['p10_ms']:.1f}",
                f"{s['p90_ms']:.1f}",
                f"{result['ratio'][phase]:.2f}" if method == METHODS[0] else "",
                end_section=method == METHODS[-1],
            )
    console.print(table)
    for method in METHODS:
        ops = Table(title=f"{method}: where a build's time goes (median ms per build)")
        ops.add_column("operation")
        ops.add_column("ms", justify="right")
        ops.add_column("count", justify="right")
        ops.add_column("µs each", justify="right")
        ops.add_column("CPU ms", justify="right")
        counts = result["operation_counts"][method]
        cpu = result["operations_cpu_ms"].get(method, {})
        for kind, ms in result["operations_ms"][method].items():
            n = counts.get(kind)
            ops.add_row(
                kind,
                f"{ms:.2f}",
                str(n or ""),
                f"{ms * 1000 / n:.0f}" if n else "",
                f"{cpu[kind]:.2f}" if kind in cpu else "",
            )
        console.print(ops)
    verdict = "met" if result["target_met"] else "NOT met"
    console.print(
        f"target: simnet/script total median <= {TARGET_RATIO}: {verdict}\n"
        f"both networks verified (ping): {all(result['verified'].values())}; "
        f"same network (links, addresses, routes, sysctls, nftables): {result['equivalent']}; "
        f"the script runs {result['script_commands']} commands",
        highlight=False,
    )


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=20, help="repetitions (default 20)")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.2,
        help="seconds to wait after each teardown, so the kernel's asynchronous cleanup of "
        "deleted namespaces does not land in the next measurement (default 0.2)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.settle < 0:
        parser.error("--settle must not be negative")
    return args


@dataclass
class Results:
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {m: [] for m in METHODS})
    verified: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(METHODS, False))
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)


def benchmark(args: argparse.Namespace, token: str, log: Console) -> dict[str, Any]:
    simnet_prefix, script_prefix = f"{PREFIX}bench{token}r", f"snb-{token}-"
    plan = plan_network(scenario_from_dict(SCENARIO))
    results = Results()
    with (
        tempfile.TemporaryDirectory(prefix="simnet-bench-") as tmp,
        leave_nothing_behind(simnet_prefix, script_prefix),
    ):
        script = render_script(plan, script_prefix, Path(tmp))
        for rep in range(args.repeat):
            check = rep == 0
            order = METHODS if rep % 2 == 0 else METHODS[::-1]
            for method in order:
                if method == "simnet":
                    sample, state = simnet_once(f"bench{token}r{rep}", check)
                else:
                    sample, state = script_once(script, plan, check)
                results.samples[method].append(sample)
                if state is not None:
                    results.verified[method] = True
                    results.snapshots[method] = state
                if args.settle:
                    time.sleep(args.settle)
            if check:
                diff = differences(results.snapshots["simnet"], results.snapshots["script"])
                if diff:
                    raise BenchmarkError(
                        "simnet and the script built different networks:\n" + "\n".join(diff)
                    )
            log.print(
                f"[dim]rep {rep + 1}/{args.repeat}: "
                + ", ".join(f"{m} {results.samples[m][-1].total * 1000:.1f} ms" for m in METHODS)
                + "[/dim]"
            )
    stats = {m: summary(results.samples[m]) for m in METHODS}
    ratio = {
        p: round(stats["simnet"][p]["median_ms"] / stats["script"][p]["median_ms"], 3)
        for p in PHASES
    }
    return {
        "benchmark": "topology",
        "scenario": SCENARIO,
        "nodes": list(plan.nodes),
        "repeat": args.repeat,
        "settle_s": args.settle,
        "prefixes": {"simnet": simnet_prefix, "script": script_prefix},
        "script_commands": script.commands,
        "verified": results.verified,
        "equivalent": True,  # a difference raises above
        "simnet": stats["simnet"],
        "script": stats["script"],
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio["total"] <= TARGET_RATIO,
        "operations_ms": {m: operations(results.samples[m]) for m in METHODS},
        "operation_counts": {m: results.samples[m][0].counts for m in METHODS},
        # the builder thread's CPU time per operation (simnet only): the rest of its wall time
        # is spent waiting in the kernel (locks, RCU grace periods) or for the CPU
        "operations_cpu_ms": {"simnet": operations(results.samples["simnet"], cpu=True)},
        "samples_ms": {
            m: [
                {"build": round(s.build * 1000, 3), "teardown": round(s.teardown * 1000, 3)}
                for s in results.samples[m]
            ]
            for m in METHODS
        },
        "host": {
            "kernel": platform.release(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log = Console(stderr=True)
    return run_benchmark(
        lambda: benchmark(args, secrets.token_hex(3), log), print_table, as_json=args.json, log=log
    )


if __name__ == "__main__":
    sys.exit(main())

"""`simnet doctor`: what this machine has of what a run needs, and how to get what is missing.

Kernel features are checked by trying them in a scratch namespace, not by reading config files:
a module can be built in, loadable, or absent, and only trying tells.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from simnet import settings
from simnet.errors import EnvironmentProblem
from simnet.net import netns
from simnet.peerkinds import KINDS, find_program

APT_FIX = "run ./setup.sh (or: apt-get install {pkg})"
VERSION_TIMEOUT_S = 10.0  # `firefox-esr --version` answers in milliseconds


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def require_root() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "simnet needs root: it creates network namespaces and nftables rules",
            fix="run it as root (e.g. sudo simnet ...)",
        )


BINARIES = {
    # binary: (debian package, required, what for)
    "nft": ("nftables", True, "NAT and firewall rules (libnftables comes with it)"),
    "ip": ("iproute2", True, "simnet exec / manual poking"),
    "turnserver": ("coturn", True, "STUN/TURN server for calls"),
    "tayga": ("tayga", False, "NAT64 in IPv6-only carriers (nat64: true)"),
    "unbound": ("unbound", False, "DNS (simnet.test) and DNS64 where a network carries IPv6"),
    "squid": ("squid", False, "HTTP proxy servers (servers: {kind: http-proxy})"),
    "conntrack": ("conntrack", False, "inspecting NAT bindings"),
    "ping": ("iputils-ping", False, "reachability checks"),
    "iperf3": ("iperf3", False, "link throughput probes"),
    "tcpdump": ("tcpdump", False, "packet captures inside hosts"),
    "certutil": ("libnss3-tools", False, "Firefox peers' TURN over TLS: the run's CA in a profile"),
}


def _binary_checks() -> list[Check]:
    checks = []
    for binary, (package, required, why) in BINARIES.items():
        path = shutil.which(binary)
        checks.append(
            Check(
                f"binary {binary}",
                path is not None,
                path or f"missing ({why})",
                APT_FIX.format(pkg=package),
                required,
            )
        )
    return checks


def _kernel_checks() -> list[Check]:
    """Try each feature in a scratch namespace that is removed afterwards."""
    name = f"sn-doctor-{secrets.token_hex(3)}"
    checks: list[Check] = []
    try:
        with netns.created(name):
            checks.append(Check("network namespaces", True, "created one"))
            from pyroute2 import IPRoute  # about 0.2 s: not paid by every command's import

            with IPRoute() as ipr:
                for kind, extra in (("veth", {"peer": "doctor1"}), ("bridge", {})):
                    try:
                        ipr.link("add", ifname=f"d{kind}", kind=kind, **extra)
                        checks.append(Check(f"{kind} links", True, "created one"))
                    except Exception as exc:  # netlink errors come in many types
                        checks.append(Check(f"{kind} links", False, str(exc), "kernel module"))
            checks.append(_nft_check())
            checks.append(_sysctl_check())
            checks.append(_netem_check())
            checks.append(_nfqueue_check())
    except OSError as exc:
        checks.append(Check("network namespaces", False, str(exc), "needs root and netns"))
    finally:
        netns.remove(name)
    return checks


def _nft_check() -> Check:
    """Load a real NAT rule set (the features every behaviour needs) into the scratch namespace."""
    # The planner and the scenario models (about 0.3 s) only for this check: every command
    # imports this module for `require_root`.
    from simnet.net.nftables import render_router
    from simnet.net.plan import RouterPlan
    from simnet.scenario.nat import Filtering, NatBehavior, PortAllocation

    behavior = NatBehavior(filtering=Filtering.ADF, port_allocation=PortAllocation.SEQUENTIAL)
    router = RouterPlan(behavior, IPv4Address("198.51.100.1"), IPv4Network("192.168.1.0/24"), None)
    try:
        import nftables  # the Python binding may be missing: that is what this checks

        rc, _, error = nftables.Nftables().cmd(render_router(router))
    except (ImportError, OSError) as exc:
        return Check("nftables NAT + dynamic maps", False, str(exc), APT_FIX.format(pkg="nftables"))
    return Check(
        "nftables NAT + dynamic maps",
        rc == 0,
        "loaded a NAT rule set" if rc == 0 else error.strip().splitlines()[0],
        "kernel needs nf_tables, nft_nat, nft_ct, nft_numgen, nft_dynset",
    )


def _sysctl_check() -> Check:
    try:
        netns.write_sysctl("net.netfilter.nf_conntrack_udp_timeout", 30)
        return Check("per-namespace conntrack timeouts", True, "set one")
    except OSError as exc:
        return Check("per-namespace conntrack timeouts", False, str(exc), "load nf_conntrack")


def _netem_check() -> Check:
    """netem is optional: delay and jitter then come from the userspace backend."""
    result = subprocess.run(
        ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        capture_output=True,
        text=True,
    )
    ok = result.returncode == 0
    return Check(
        "sch_netem (in-kernel delay)",
        ok,
        "available" if ok else "absent: the userspace (NFQUEUE) delay backend will be used",
        required=False,
    )


def _nfqueue_check() -> Check:
    """The userspace link backend: bind a queue and feed it from iptables' raw table."""
    name = "NFQUEUE (userspace link delay)"
    need = shutil.which("iptables-nft-restore") or shutil.which("iptables-restore")
    if need is None:
        return Check(name, False, "iptables-restore missing", APT_FIX.format(pkg="iptables"))
    try:
        from netfilterqueue import NetfilterQueue  # optional: its absence is what this checks

        queue = NetfilterQueue()
        queue.bind(0, lambda packet: None)
        queue.unbind()
    except (ImportError, OSError) as exc:
        return Check(name, False, str(exc), "pip install netfilterqueue; kernel nfnetlink_queue")
    rule = "*raw\n-A PREROUTING -i lo -j NFQUEUE --queue-num 0\nCOMMIT\n"
    done = subprocess.run([need, "--noflush"], input=rule, capture_output=True, text=True)
    ok = done.returncode == 0
    return Check(
        name,
        ok,
        "bound a queue and fed it from the raw table" if ok else done.stderr.strip(),
        "kernel needs nfnetlink_queue and xt_NFQUEUE",
        required=False,
    )


def _realtime_check() -> Check:
    """Can a delay line helper get the real-time priority it asks for? Without it (a cpu cgroup
    with no real-time runtime, under the kernel's RT group scheduling) it still runs, but a busy
    machine makes it release packets late far more often (its rows say `emulator_late`)."""
    name = "real-time priority (delay line timing)"
    priority = settings.rt_priority()
    if priority <= 0:
        return Check(name, True, f"off ({settings.RT_PRIORITY_ENV}=0)", required=False)
    code = f"import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param({priority}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    ok = done.returncode == 0
    return Check(
        name,
        ok,
        f"SCHED_FIFO {priority} granted" if ok else done.stderr.strip().splitlines()[-1],
        "run simnet in a cgroup with real-time runtime (cpu.rt_runtime_us), or the root one",
        required=False,
    )


def _program_version(program: Path, flag: str) -> str:
    """The first line `program flag` prints (its version), or why there is none."""
    try:
        done = subprocess.run(
            [str(program), flag], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no version: {exc}"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else f"no version (exit {done.returncode})"


def _peer_kind_checks() -> list[Check]:
    """What each peer kind of the registry (`simnet.peerkinds`) needs on this machine; optional,
    since a run needs only the kinds its hosts name (aiortc, simnet's own dependency, none)."""
    checks = []
    for kind in KINDS.values():
        needed = kind.requirement
        if needed is None:
            continue
        found = find_program(needed.binaries)
        detail = str(found) if found else f"missing ({kind.title} peers: peer: {kind.name})"
        if found is not None and needed.version_flag is not None:
            detail += f" ({_program_version(found, needed.version_flag)})"
        checks.append(Check(needed.check, found is not None, detail, needed.fix, required=False))
    return checks


def run_checks() -> list[Check]:
    checks = [Check("root", os.geteuid() == 0, f"uid {os.geteuid()}", "run as root")]
    checks += _binary_checks()
    checks += _peer_kind_checks()
    if os.geteuid() == 0:
        checks += _kernel_checks()
        checks.append(_realtime_check())
    return checks

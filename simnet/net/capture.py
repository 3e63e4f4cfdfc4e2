"""Packet captures of a call: one tcpdump per host, inside the host's namespace, on its interface
(on all of them, `any`, for a host that a timeline moves to another network mid-call).

Why: a failed call is debugged from what crossed the wire (which checks went out, which answers
never came, whether the TURN server was reached). `simnet run --pcap` therefore records, for
each call, one pcap per host next to the results, and names the files in the call's row.

Each tcpdump is a managed process of the run (`simnet.net.process`): it is ready when it says
on stderr that it is listening (from then on the kernel hands it every packet), and it is
stopped with SIGTERM, on which tcpdump writes out what it buffered and its packet counts, so
the file is complete; the run's teardown kills it whatever happens. It writes with `-U`
(packet-buffered), so even a capture cut short by SIGKILL keeps every packet written before.
`-Z root`: tcpdump would otherwise switch to its own user before opening the file, which may
not be allowed to write in the results directory. `--immediate-mode`: without it libpcap reads
the kernel's ring in blocks, handed over when full or after a timeout (~1 s), and a block
still open when SIGTERM comes is lost: a call shorter than that (a LAN call takes 0.1-0.5 s)
was captured as an empty file, now and then (seen on the second call of a `--repeat 2` run).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from simnet.errors import EnvironmentProblem
from simnet.net.builder import Network
from simnet.net.plan import HOST_IF, Role
from simnet.net.process import ManagedProcess, line_matches, start

READY_TIMEOUT_S = 10.0  # tcpdump is listening within milliseconds; this is for a stall
STOP_GRACE_S = 5.0  # it flushes and exits on SIGTERM at once
CAPTURED = re.compile(r"^(\d+) packets? captured")


@dataclass
class Capture:
    """One running tcpdump: `host`'s interface into `path`."""

    host: str
    path: Path
    process: ManagedProcess


@dataclass(frozen=True)
class CaptureResult:
    host: str
    path: Path
    packets: int | None  # what tcpdump reported capturing (None if it could not say)
    exit_code: int


def hosts_of(network: Network) -> list[str]:
    """The scenario's hosts (not routers or servers), in plan order."""
    return [name for name, node in network.plan.nodes.items() if node.role == Role.HOST]


async def start_captures(
    network: Network, hosts: Sequence[str], directory: Path, stem: str
) -> list[Capture]:
    """Start one tcpdump per host writing `<directory>/<stem>-<host>.pcap`; return once every
    one is listening. On failure, those already started are stopped."""
    directory.mkdir(parents=True, exist_ok=True)
    captures: list[Capture] = []
    try:
        for host in hosts:
            path = directory / f"{stem}-{host}.pcap"
            # a host a timeline moves changes interfaces mid-call: capture all of them
            interface = "any" if host in network.plan.attachments else HOST_IF
            argv = ["tcpdump", "-i", interface, "-n", "-U", "--immediate-mode", "-Z", "root"]
            argv += ["-w", str(path)]
            try:
                process = start(
                    network.run,
                    f"tcpdump-{host}",
                    argv,
                    ns=network.ns(host),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            except FileNotFoundError:
                raise EnvironmentProblem(
                    "cannot run tcpdump for --pcap", fix="apt-get install tcpdump (setup.sh does)"
                ) from None
            captures.append(Capture(host, path, process))
        for capture in captures:
            await capture.process.await_line(
                line_matches(r"listening on"), stream="stderr", timeout_s=READY_TIMEOUT_S
            )
    except BaseException:
        await asyncio.shield(stop_captures(captures))
        raise
    return captures


async def stop_captures(captures: Sequence[Capture]) -> list[CaptureResult]:
    """SIGTERM every tcpdump (each writes out its buffer and counts) and read what it said."""
    results = []
    for capture in captures:
        code = await capture.process.astop(STOP_GRACE_S)
        stderr = capture.process.popen.stderr
        said = stderr.read().decode(errors="replace") if stderr is not None else ""
        packets = next(
            (int(m.group(1)) for line in said.splitlines() if (m := CAPTURED.match(line))), None
        )
        results.append(CaptureResult(capture.host, capture.path, packets, code))
        if stderr is not None:
            stderr.close()
    return results

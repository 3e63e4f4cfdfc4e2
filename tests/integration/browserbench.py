"""What the browser peers' integration tests (test_chromium_peer.py, test_firefox_peer.py) share:
the LAN they call on, and the checks every browser peer must pass in the same way (started in
its namespace and process group, silent when idle, a missing browser a clear start error, a page
broken mid-call a "browser" error, nothing left behind by a whole run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from simnet.net import netns
from simnet.net.builder import Network, apply_nft
from simnet.peer.control.agent import PeerAgent, PeerAgentError, result_of
from simnet.peer.protocol import CallResult
from tests.integration.peerbench import COUNTER_TABLE, Bench, commands, read_counters

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def lan_scenario(name: str) -> dict[str, Any]:
    """alice and bob on one LAN behind a port-restricted-cone NAT; coturn and the signaling
    server public."""
    return {
        "name": name,
        "nats": {"home": {"preset": "port-restricted-cone"}},
        "hosts": {"alice": {"behind": "home"}, "bob": {"behind": "home"}},
        "servers": {"turn": {"kind": "turn"}, "signaling": {"kind": "signaling"}},
    }


def assert_ready_in_its_namespace(bench: Bench, kind: str, version_prefix: str) -> None:
    """Both agents said ready as `kind`, and each browser lives in its host's namespace, in its
    agent's process group."""
    for host, agent in (("alice", bench.alice), ("bob", bench.bob)):
        ready = agent.ready_event
        assert ready["protocol"] == 1 and ready["peer_kind"] == kind
        assert ready["peer_version"].startswith(version_prefix)
        assert ready["netns"] == bench.net.ns(host)
        browser = int(ready["browser_pid"])
        assert (
            os.stat(f"/proc/{browser}/ns/net").st_ino
            == os.stat(netns.path_of(bench.net.ns(host))).st_ino
        )
        assert os.getpgid(browser) == agent.pid


async def assert_idle_sends_nothing(
    network: Network,
    start: Callable[[Network, str], Awaitable[PeerAgent]],
    window_s: float,
    family: str = "ip",
) -> None:
    """From its launch (`start(network, "alice")`) to `window_s` after ready, alice's browser
    sends no packet out of her host (of address `family`: "ip", or "inet" for IPv6 too)."""
    ns = network.ns("alice")
    with netns.entered(ns):
        apply_nft(
            f"table {family} {COUNTER_TABLE} {{\n  counter out {{}}\n"
            "  chain output {\n    type filter hook output priority -300; policy accept;\n"
            '    oifname != "lo" counter name out\n  }\n}\n',
            where=ns,
        )
    agent = await start(network, "alice")
    try:
        await asyncio.sleep(window_s)  # the window observed, not a wait for readiness
        assert read_counters(ns, family)["out"] == (0, 0)
    finally:
        await agent.close()


async def assert_a_missing_browser_fails_the_start(
    network: Network, argv: list[str], missing: str, fix: str
) -> None:
    """The agent `argv` (naming the executable `missing`) fails to start, its error naming the
    executable and ending in `fix` (the agent log's last line says how to get one)."""
    with pytest.raises(PeerAgentError) as info:
        await PeerAgent.start(network.run, network.ns("alice"), argv=argv, timeout_s=30)
    assert info.value.kind == "start"
    assert missing in str(info.value)
    assert fix in str(info.value)


def group_processes(
    agent: PeerAgent, proc_file: str, matches: Callable[[bytes], bool]
) -> list[int]:
    """The processes of `agent`'s process group (its browser's) whose /proc/PID/`proc_file`
    `matches`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != agent.pid:
                continue
            content = Path(f"/proc/{entry}/{proc_file}").read_bytes()
        except (OSError, ProcessLookupError):
            continue
        if matches(content):
            found.append(int(entry))
    return found


async def break_the_page_mid_call(
    bench: Bench, victims: Callable[[], list[int]], sig: signal.Signals
) -> tuple[CallResult, float]:
    """A call in which alice's page processes (`victims()`) get `sig` once her data channel is
    open (SIGSTOP: a hang, killed once her result is in); her result and how long after the
    signal it was reached (the result's own time: it goes out once her agent has replaced the
    page, which a hung page's close may take a while to allow)."""
    offer, answer = commands(bench, hold_s=8.0, data_bytes=0, rtt_probes=0)
    hit: dict[str, float] = {}
    stopped: list[int] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "dc_open" and not hit:
            processes = victims()
            assert processes, "no page process found in the agent's process group"
            hit["t"] = time.monotonic()  # before the first signal: the agent may notice at once
            for pid in processes:
                os.kill(pid, sig)
            stopped.extend(processes)

    alice_call = asyncio.ensure_future(bench.alice.call(offer, on_event=on_event))
    bob_call = asyncio.ensure_future(bench.bob.call(answer))
    alice_events = await alice_call
    noticed = alice_events[-1]["t"] - hit["t"]  # the result: one monotonic clock per machine
    print(f"\nalice's result came {time.monotonic() - hit['t']:.1f} s after the signal")
    if sig == signal.SIGSTOP:
        for pid in stopped:  # those her agent's repair has not ended already
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    await bob_call
    return result_of(alice_events), noticed


# A parent that is a child subreaper: every process its command leaves behind (a zombie never
# reaped, or one still running) is handed to it, and it lists them before reaping them.
SUBREAPER = r"""
import ctypes, json, os, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
left = []
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == os.getpid():
            left.append({"pid": int(entry), "comm": comm, "state": state})
for each in left:  # the test reports them; nothing is left for init either way
    try:
        os.kill(each["pid"], 9)
        os.waitpid(each["pid"], 0)
    except (ProcessLookupError, ChildProcessError):
        pass
print(json.dumps({"rc": done.returncode, "stderr": done.stderr[-2000:], "left": left}))
"""


def assert_a_run_leaves_no_process(tmp_path: Path, kind: str) -> None:
    """`simnet run` of direct-lan.yaml with `kind` on both sides, under a subreaper: when the
    run has ended, no process it started is left, running or `<defunct>`."""
    cli = [sys.executable, "-m", "simnet.cli", "run", str(SCENARIOS / "direct-lan.yaml")]
    cli += ["--out", str(tmp_path)]
    for each in (f"hosts.alice.peer={kind}", f"hosts.bob.peer={kind}", "call.data_bytes=0"):
        cli += ["--set", each]
    done = subprocess.run(
        [sys.executable, "-c", SUBREAPER, *cli], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["rc"] == 0, report["stderr"]
    assert report["left"] == [], f"left behind: {report['left']}"

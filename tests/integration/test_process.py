"""The managed-process helper (`simnet.net.process`) starts, watches and stops processes as it says.

Why: every process simnet starts (coturn, iperf3, delay lines, peer agents, tcpdump) goes through
it, so a process that outlives its run, a readiness wait that is really a sleep, or a stop that
leaves a child behind would show up everywhere at once. Each test observes the kernel (/proc,
/run/simnet, signals a process really got), not the helper's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from simnet.cleanup import cleanup
from simnet.net import netns, process
from simnet.net.process import ProcessFailed
from simnet.net.registry import STATE_DIR, Run
from simnet.run.cpu_tree import process_tree_cpu_s

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _state(run: Run) -> dict[str, Any]:
    return dict(json.loads((STATE_DIR / f"{run.id}.json").read_text()))


def test_state_file_names_the_process_before_it_is_forked() -> None:
    """A process that cannot even be forked (no such binary) is already in the state file, and
    a started child finds its own entry there when it runs (its first action)."""
    with Run(label="test") as run:
        with pytest.raises(FileNotFoundError):
            process.start(run, "ghost", ["/nonexistent/ghost"])
        assert [p["name"] for p in _state(run)["processes"]] == ["ghost"]

        script = (
            "import json, os, sys; s = json.load(open(sys.argv[1]));"
            "print([p['name'] for p in s['processes']], os.environ['SIMNET_RUN'])"
        )
        child = process.start(
            run,
            "reader",
            [sys.executable, "-c", script, str(STATE_DIR / f"{run.id}.json")],
            stdout=subprocess.PIPE,
        )
        line = child.wait_line(lambda s: True, timeout_s=30)
        assert line == f"['ghost', 'reader'] {run.id}"
        assert child.wait_exit(30) == 0
        entry = _state(run)["processes"][1]
        assert entry["pid"] == child.pid


def test_ready_on_a_line_and_inside_the_namespace() -> None:
    """`wait_line` returns the line the process prints when ready, skipping those before it;
    the process runs in the namespace it was started in."""
    with Run(label="test") as run:
        ns = run.ns_name("proc")
        run.register_namespace(ns)
        with netns.created(ns):
            pass
        script = "echo starting; echo ready now; exec sleep 300"
        proc = process.start(run, "sh", ["sh", "-c", script], ns=ns, stdout=subprocess.PIPE)
        assert proc.wait_line(process.line_matches("^ready"), timeout_s=30) == "ready now"
        assert proc.alive()
        assert os.stat(f"/proc/{proc.pid}/ns/net").st_ino == os.stat(netns.path_of(ns)).st_ino
        assert proc.stop() == -signal.SIGTERM


def test_exit_before_ready_ends_the_wait_at_once() -> None:
    """A process that dies before its ready line fails the wait with its exit code and log,
    long before the deadline (the deadline here is 300 s; the pytest timeout would fire)."""
    with Run(label="test") as run:
        log = run.workdir / "bad.log"
        log.write_text("bad option --frobnicate\n")
        proc = process.start(run, "bad", ["sh", "-c", "exit 3"], stdout=subprocess.PIPE, log=log)
        with pytest.raises(ProcessFailed, match="ended before the ready line") as failed:
            proc.wait_line(lambda s: s == "ready", timeout_s=300)
        assert "bad option --frobnicate" in str(failed.value)
        assert proc.stop() == 3

        waiting = process.start(run, "idle", ["sh", "-c", "exit 4"])
        with pytest.raises(ProcessFailed, match="exit code 4"):
            waiting.wait_until(lambda: False, "listening", timeout_s=300)
        assert waiting.stop() == 4


def test_stop_is_graceful_then_kills_the_group() -> None:
    """SIGTERM first: a process that handles it finishes its work (here: writes a file) and
    exits 0. One that ignores it is killed with its whole group after the grace, and so is a
    child its leader left behind when it exited on SIGTERM."""
    with Run(label="test") as run:
        done = run.workdir / "done"
        polite = textwrap.dedent(f"""
            import signal, sys, time
            def bye(*_):
                open({str(done)!r}, "w").write("flushed")
                sys.exit(0)
            signal.signal(signal.SIGTERM, bye)
            print("ready", flush=True)
            time.sleep(300)
        """)
        proc = process.start(run, "polite", [sys.executable, "-c", polite], stdout=subprocess.PIPE)
        proc.wait_line(lambda s: s == "ready", timeout_s=30)
        assert proc.stop() == 0
        assert done.read_text() == "flushed"

        stubborn = "trap '' TERM; sleep 300 & echo $!; wait"
        proc = process.start(run, "stubborn", ["sh", "-c", stubborn], stdout=subprocess.PIPE)
        child = int(proc.wait_line(str.isdigit, timeout_s=30))
        assert proc.stop(grace_s=0.2) == -signal.SIGKILL
        assert not _alive(child)

        # the trap before the child: the pid line means the handler is in place (a TERM that came
        # between the echo and the trap killed the shell with -15: CI, once)
        leaves_child = "trap 'exit 0' TERM; sleep 300 & echo $!; wait"
        proc = process.start(run, "leaver", ["sh", "-c", leaves_child], stdout=subprocess.PIPE)
        child = int(proc.wait_line(str.isdigit, timeout_s=30))
        assert proc.stop() == 0
        assert not _alive(child)
        assert proc.stop() == 0  # twice is fine


async def test_async_ready_and_stop() -> None:
    """The same on an event loop: the loop keeps running while a line is awaited."""
    with Run(label="test") as run:
        script = "read go; echo ready; exec sleep 300"
        proc = process.start(
            run, "async", ["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert proc.popen.stdin is not None
        proc.popen.stdin.write(b"go\n")
        proc.popen.stdin.flush()
        assert await proc.await_line(lambda s: s == "ready", timeout_s=30) == "ready"
        assert await proc.await_exit(0.05) is None  # still running
        assert await proc.astop() == -signal.SIGTERM
        assert not _alive(proc.pid)


async def test_every_waiter_sees_the_exit() -> None:
    """Two tasks wait for one process's exit at once (a peer agent's `close()` and its call
    task that saw the agent's stdout end): both are woken by the exit. A loop holds one reader
    per descriptor, so each waiter adding its own reader on the pidfd left the first one
    asleep for its whole timeout (seen as a 5 s `close()` in 1 of 6 suite runs under load)."""
    with Run(label="test") as run:
        proc = process.start(run, "waited", ["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        first = asyncio.ensure_future(proc.await_exited(60))
        second = asyncio.ensure_future(proc.await_exit(60))
        await asyncio.sleep(0)  # both are waiting before the process exits
        assert not first.done() and not second.done()
        assert proc.popen.stdin is not None
        proc.popen.stdin.close()
        # A waiter that missed the exit would come back False / None, 60 s later.
        assert await first is True
        assert await second == 0
        assert await proc.await_exited(60) is True  # reaped now: at once


def test_cleanup_finds_a_process_whose_pid_never_reached_the_state_file() -> None:
    """An owner killed right after the fork leaves a state file naming the process but no pid.
    `simnet cleanup` finds the process by the run id in its environment, and its children."""
    owner = textwrap.dedent("""
        import os, signal, subprocess, sys
        from simnet.net import process
        from simnet.net.registry import Run
        run = Run(label="test").__enter__()
        run.register_process = lambda pid, name=None: None  # as if killed before this
        proc = process.start(run, "orphan", ["sh", "-c", "sleep 300 & echo $!; wait"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        child = proc.wait_line(str.isdigit, timeout_s=30)
        print(run.id, proc.pid, child, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", owner], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    run_id, leader, child = done.stdout.split()
    state = json.loads((STATE_DIR / f"{run_id}.json").read_text())
    assert state["pids"] == []
    assert [(p["name"], p["pid"]) for p in state["processes"]] == [("orphan", None)]
    assert _alive(int(leader)) and _alive(int(child))

    report = cleanup()
    assert {int(leader), int(child)} <= set(report.processes)
    assert not _alive(int(leader)) and not _alive(int(child))
    assert not (STATE_DIR / f"{run_id}.json").exists()


def test_a_process_trees_cpu_includes_its_childrens() -> None:
    """The load command's per-agent CPU: a parent that only waits is charged its busy
    child's CPU (the child burns 0.3 s, then stays); a process that is gone is left out."""
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    parent = subprocess.Popen(
        ["sh", "-c", f"{sys.executable} -c '{burn}time.sleep(60)' & wait"],
        start_new_session=True,
    )
    try:
        seen = 0.0
        deadline = time.monotonic() + 30
        while seen < 0.29 and time.monotonic() < deadline:
            seen = process_tree_cpu_s([parent.pid]).get(parent.pid, 0.0)
        assert seen >= 0.29, f"the child's CPU was not charged to its parent: {seen} s"
        assert psutil.Process(parent.pid).cpu_times().user < 0.2  # the shell itself idles
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
    assert parent.pid not in process_tree_cpu_s([parent.pid])

"""Real-time scheduling of the processes that must not wait behind the peers.

Why: with autogroup scheduling every session weighs the same, so 400 peer processes left coturn
and the load command a four-hundredth of the machine (`simnet.net.realtime`). These tests set
real policies on real processes and threads (root), and check that nothing is left real-time
that should not be: a peer forked while the load loop is raised starts with normal scheduling.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from simnet.net import realtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

# a process with three threads, a fourth started on "go" (from a promoted thread)
THREADED = """
import sys, threading, time
for _ in range(2):
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("started", flush=True)
time.sleep(60)
"""


@pytest.fixture
def threaded() -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", THREADED], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    yield child
    child.kill()
    child.wait()


def _policies(pid: int) -> set[tuple[int, int]]:
    return {
        (os.sched_getscheduler(int(t)), os.sched_getparam(int(t)).sched_priority)
        for t in os.listdir(f"/proc/{pid}/task")
    }


def test_promote_makes_every_thread_fifo_and_later_threads_inherit_it(
    threaded: subprocess.Popen[str],
) -> None:
    assert _policies(threaded.pid) == {(os.SCHED_OTHER, 0)}
    assert realtime.promote(threaded.pid, 7) is None
    assert _policies(threaded.pid) == {(os.SCHED_FIFO, 7)}
    assert threaded.stdin is not None and threaded.stdout is not None
    threaded.stdin.write("go\n")
    threaded.stdin.flush()
    assert threaded.stdout.readline() == "started\n"
    assert len(os.listdir(f"/proc/{threaded.pid}/task")) == 4
    assert _policies(threaded.pid) == {(os.SCHED_FIFO, 7)}


def test_promote_with_priority_zero_changes_nothing_and_a_gone_process_is_a_reason(
    threaded: subprocess.Popen[str],
) -> None:
    assert realtime.promote(threaded.pid, 0) is None
    assert _policies(threaded.pid) == {(os.SCHED_OTHER, 0)}
    threaded.kill()
    threaded.wait()
    problem = realtime.promote(threaded.pid, 7)
    assert problem is not None and str(threaded.pid) in problem


def test_raised_holds_for_the_block_only_and_forks_start_normal() -> None:
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    with realtime.raised(6) as problem:
        assert problem is None
        assert os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO
        assert os.sched_getparam(0).sched_priority == 6
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert int(child.stdout) == os.SCHED_OTHER  # a peer started meanwhile is not real-time
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    assert os.sched_getparam(0).sched_priority == 0
    with realtime.raised(0) as problem:
        assert problem is None and os.sched_getscheduler(0) == os.SCHED_OTHER

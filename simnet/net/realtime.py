"""Real-time scheduling for the processes that must not wait behind the peers.

Why: every process simnet starts gets a session of its own (`simnet.net.process`), and Linux
with autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled`, on in Debian's kernels)
gives each session an equal share of the CPU whatever its threads' nice values. A load level
of 200 pion calls runs 400 agent processes, so coturn and the load command (which serves
signaling in its event loop and drives every agent) each got about one four-hundredth of the
machine when the agents were busy. Measured 2026-12-06 (`simnet load scenarios/turn-load.yaml
--calls 200 --ramp 10 --peers pion --media audio`, 200 pairs sharing NATs, UDP TURN): coturn's
two relay threads sat runnable (`R`) for 15 s with 3.5 MB in each of its port-3478 receive
queues, dropping 67,000 datagrams while it used 8 % of a core; renicing them changed nothing (a
thread's nice value only weighs within its own session). Real-time policy is outside that
sharing: with coturn SCHED_FIFO the same level dropped none, and relayed 7,100 packets/s instead
of 4,700. A server of the emulated internet stands for a machine of its own, so it is scheduled
before the peers; the delay lines come first of all (`SIMNET_LINK_RT_PRIORITY`, higher).

The kernel's real-time throttling (`sched_rt_runtime_us`, 95 % of each period) bounds what a
runaway real-time process can take.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def promote(pid: int, priority: int) -> str | None:
    """Make every thread of `pid` SCHED_FIFO at `priority` (threads it starts later inherit it
    from theirs). None when done or `priority` is 0; otherwise why not, for the caller to say."""
    if priority <= 0:
        return None
    try:
        threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError as exc:
        return f"no threads of process {pid}: {exc.strerror}"
    for tid in threads:
        try:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
        except ProcessLookupError:
            continue  # the thread ended meanwhile
        except OSError as exc:
            return f"SCHED_FIFO {priority} refused for process {pid}: {exc.strerror}"
    return None


@contextlib.contextmanager
def raised(priority: int) -> Iterator[str | None]:
    """The calling thread SCHED_FIFO at `priority` for the block, its policy as before after.

    Processes it forks meanwhile start with normal scheduling (SCHED_RESET_ON_FORK), so a peer
    started during the block is not real-time. Yields None, or why the policy was refused."""
    if priority <= 0:
        yield None
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except OSError as exc:
        yield f"SCHED_FIFO {priority} refused: {exc.strerror}"
        return
    try:
        yield None
    finally:
        os.sched_setscheduler(0, policy & ~os.SCHED_RESET_ON_FORK, param)

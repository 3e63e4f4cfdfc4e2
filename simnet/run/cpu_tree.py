"""CPU seconds of process trees, read in one pass over the process table.

Why not `psutil.Process.children(recursive=True)` per process: each call scans the whole
process table, so a load level's 400 peer agents sampled twice a second cost 400 scans of about
a thousand processes per sample. Measured with py-spy on `simnet load scenarios/turn-load.yaml
--calls 200 --peers pion` (2026-12-06): that sampling took 56 % of the load command's time, on
the event loop that also relays every call's signaling, and offers reached their callees 2.6 s
after they were sent. One pass builds the parent map once for every tree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import psutil


def tree_cpu_s(
    roots: Iterable[int], parents: Mapping[int, int], cpu_s: Mapping[int, float]
) -> dict[int, float]:
    """Each root's CPU seconds plus its descendants', from a snapshot of the process table
    (`parents`: pid -> parent pid, `cpu_s`: pid -> its own CPU seconds). A root absent from
    the snapshot (it has exited) is absent from the answer. Pure: the unit tests' subject."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, parent in parents.items():
        if pid != parent:  # pid 0's parent is itself on some systems: no cycle
            children[parent].append(pid)
    sums: dict[int, float] = {}
    for root in roots:
        if root not in cpu_s:
            continue
        total, stack, seen = 0.0, [root], set()
        while stack:
            pid = stack.pop()
            if pid in seen:  # a pid reused while the table was read: count it once
                continue
            seen.add(pid)
            total += cpu_s.get(pid, 0.0)
            stack.extend(children.get(pid, ()))
        sums[root] = total
    return sums


def process_tree_cpu_s(roots: Iterable[int]) -> dict[int, float]:
    """CPU seconds (user + system) so far of each process in `roots`, its descendants
    included, from one read of every process's `stat` (blocking: call it in a thread)."""
    parents: dict[int, int] = {}
    cpu_s: dict[int, float] = {}
    for process in psutil.process_iter(["ppid", "cpu_times"]):
        times = process.info["cpu_times"]
        if times is None:  # gone or not readable between the listing and the read
            continue
        parents[process.pid] = process.info["ppid"]
        cpu_s[process.pid] = float(times.user + times.system)
    return tree_cpu_s(roots, parents, cpu_s)

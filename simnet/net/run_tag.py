"""The environment tag of a run's processes: every managed process carries its run's id
(`SIMNET_RUN`) and its name within the run (`SIMNET_PROCESS`) in its environment.

The tag finds a process whose pid never reached the run's state file (its owner was killed right
after the fork) and every process such a process forked: the run's teardown
(`simnet.net.registry`) and `simnet cleanup` look for it, and `simnet.net.process` sets it.
"""

from __future__ import annotations

import os

RUN_ENV = "SIMNET_RUN"  # the owning run's id, in every managed process's environment
NAME_ENV = "SIMNET_PROCESS"  # the process's name within its run


def tagged_pids(run_id: str) -> list[int]:
    """Live processes that carry `SIMNET_RUN=run_id` in their environment (found in /proc)."""
    tag = f"{RUN_ENV}={run_id}".encode()
    found = []
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if tag in environ.split(b"\0"):
            found.append(int(entry))
    return found

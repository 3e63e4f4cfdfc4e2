"""One batch of calls in a process of its own: `python -m simnet.run.batch` (JSON job on stdin).

A Dask worker (`simnet.run.cluster`) starts this for each batch it is given: a run needs a main
thread (signal handling, namespace entry), which a worker's task thread is not. The job holds
the scenario (validated JSON), its overrides, and per call the columns its row gets (a sweep's
point and repetition, a population call's classes, the `worker`) and its key; each row is
printed as one line (`cluster.encode_row`) the moment its call ends. The process dies with its
parent (PR_SET_PDEATHSIG): a killed worker leaves no batch running, only a dead run that the
cleanup plugin removes.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from typing import Any

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (even by SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def main() -> int:
    die_with_parent(int(os.environ.get("SIMNET_BATCH_PARENT", os.getppid())))
    from simnet.results.schema import ResultRow
    from simnet.run.calls import run_scenario
    from simnet.run.cluster import encode_row
    from simnet.scenario.model import Scenario

    job: dict[str, Any] = json.loads(sys.stdin.read())
    scenario = Scenario.model_validate(job["scenario"])
    runs: list[dict[str, Any]] = job["runs"]
    sent = 0

    def on_row(row: ResultRow) -> None:
        nonlocal sent
        print(encode_row(job["keys"][sent], row.placed(**runs[sent])), flush=True)
        sent += 1

    run_scenario(scenario, len(runs), on_row, overrides=job["overrides"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

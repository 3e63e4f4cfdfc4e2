"""Batches of calls in a process of their own: `python -m simnet.run.batch`, one JSON job per
line on stdin.

A Dask worker (`simnet.run.cluster`) keeps such a process per task thread and hands it batch
after batch: a run needs a main thread (signal handling, namespace entry), which a worker's task
thread is not, and a long-lived process pays the interpreter and its imports (aiortc's among
them) once, as the local runner's process pool does. A fresh process per batch had made the
cluster path 53 % slower than the local runner (the same 75 runs in 165 s against 108).

A job holds the scenario (validated JSON), its overrides, and per call the columns its row gets
(a sweep's point and repetition, a population call's classes, the `worker`) and its key; each
row is printed as one line (`batch_stream.encode_row`) the moment its call ends, and `END` after the
job's last row. A job that fails ends the process (its log says why).

The process dies with its worker: it holds the read end of a pipe (`SIMNET_BATCH_LIFELINE`)
whose write end only the worker has, and kills itself when that end closes, so a killed worker
leaves no batch running, only a dead run that the cleanup plugin removes. (Not
PR_SET_PDEATHSIG: that follows the thread which started the process, not the worker.)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

from simnet.run.batch_stream import END, LIFELINE_ENV, encode_row


def die_with_lifeline(fd: int) -> None:
    """SIGKILL this process once the pipe at `fd` reports end-of-file (nothing is ever written
    to it: EOF means every holder of its write end, the worker, is gone)."""

    def wait() -> None:
        while os.read(fd, 1):
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=wait, name="lifeline", daemon=True).start()


def main() -> int:
    die_with_lifeline(int(os.environ[LIFELINE_ENV]))
    # Imported once the lifeline is watched: a worker killed during these imports (pandas,
    # pydantic, the run machinery: about 2 s) still takes this process with it.
    from simnet.results.schema import ResultRow
    from simnet.run.calls import run_scenario
    from simnet.scenario.model import Scenario

    for line in sys.stdin:
        job: dict[str, Any] = json.loads(line)
        scenario = Scenario.model_validate(job["scenario"])
        runs: list[dict[str, Any]] = job["runs"]
        sent = 0

        def on_row(row: ResultRow) -> None:
            nonlocal sent
            print(encode_row(job["keys"][sent], row.placed(**runs[sent])), flush=True)  # noqa: B023
            sent += 1

        run_scenario(scenario, len(runs), on_row, overrides=job["overrides"])
        print(END, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A local Dask cluster for the integration tests: a real scheduler and two real workers on
127.0.0.1 (the `cluster` fixture in conftest.py), and a bounded wait on what they write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DASK = str(Path(sys.executable).with_name("dask"))
POLL_S = 0.2


def wait_until(what: str, check: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(POLL_S)  # polling files another process writes


@contextmanager
def local_cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, subprocess.Popen[bytes]]]]:
    """A scheduler and two workers (no nanny: a killed worker stays dead), one thread each."""
    scheduler_file = tmp_path / "scheduler.json"
    logs = tmp_path / "logs"
    logs.mkdir()
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(name: str, *args: str) -> None:
        with open(logs / f"{name}.log", "wb") as log:
            processes[name] = subprocess.Popen(
                [DASK, *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0",
          "--scheduler-file", str(scheduler_file), "--no-dashboard")  # fmt: skip
    wait_until("the scheduler's address file", scheduler_file.exists)
    address = json.loads(scheduler_file.read_text())["address"]
    for name in ("w1", "w2"):
        spawn(name, "worker", address, "--name", name, "--nthreads", "1", "--no-nanny",
              "--no-dashboard", "--host", "127.0.0.1")  # fmt: skip
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
    try:
        yield address, processes
    finally:  # nothing of simnet's runs in them by now: no need to wait for a polite shutdown
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

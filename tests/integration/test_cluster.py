"""`simnet sweep --cluster` on a real Dask scheduler and two real workers on 127.0.0.1.

Why: on a cluster a worker can die mid-run, and the sweep must still end with exactly one row
per planned run (the lost batch rerun elsewhere, a repetition sent twice kept once), every row
naming the worker that ran it, and the dead worker's network removed from its machine. Only the
real engine shows that: its scheduler's rescheduling, its queue, its worker plugins.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pandas as pd
import psutil
import pytest

from simnet.net import netns
from simnet.net.registry import read_states
from simnet.results.store import load
from tests.integration.conftest import SIMNET, run_cli
from tests.integration.dask_cluster import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


def _sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        f"name: cluster-test\nscenario: {ROOT / 'scenarios' / 'direct-lan.yaml'}\n"
        "axes: {call.data_bytes: [10000, 20000, 30000]}\nrepeat: 2\n"
    )
    return path


def _workers_in(out: Path) -> set[str]:
    files = list(out.glob("*.parquet")) if out.exists() else []
    if not files:
        return set()
    frame = pd.concat([pd.read_parquet(f, columns=["worker"]) for f in files])
    return set(frame["worker"].dropna())


def test_a_worker_killed_mid_sweep_costs_no_row_and_leaves_nothing(
    cluster: tuple[str, dict[str, subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    address, processes = cluster
    out = tmp_path / "results"
    sweep = subprocess.Popen(
        [*SIMNET, "sweep", str(_sweep_file(tmp_path)), "--cluster", address, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # both workers have delivered a row: kill w2 while its batch's second run is going
        wait_until("a row from each worker", lambda: len(_workers_in(out)) == 2, timeout_s=180)
        batch_children = [
            child
            for child in psutil.Process(processes["w2"].pid).children()
            if "simnet.run.batch" in child.cmdline()
        ]
        assert batch_children, "w2 runs its batch in a child process"
        processes["w2"].send_signal(signal.SIGKILL)
        # the child mid-batch dies with its worker (it holds a pipe only the worker writes to)
        _, alive = psutil.wait_procs(batch_children, timeout=10)
        assert not alive, f"w2's batch process outlived it: {alive}"
        stdout, stderr = sweep.communicate(timeout=240)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait()
    assert sweep.returncode == 0, stdout + stderr
    rows = load(out)
    keys = list(zip(rows["point_id"], rows["repetition"], strict=True))
    assert len(keys) == 6 and len(set(keys)) == 6  # one row per planned run, none twice
    assert all(rows["connected"])
    workers = set(rows["worker"])
    assert {w.rsplit("/", 1)[1] for w in workers} == {"w1", "w2"}, workers
    # the killed worker's run is gone from this machine: no state, namespace or process of it
    assert not [s for s in read_states() if str(s.get("id")) in set(rows["run_id"])]
    assert not [n for n in netns.list_names("sn-") if n.split("-")[1] in set(rows["run_id"])]


def test_an_unreachable_scheduler_is_one_clear_error(tmp_path: Path) -> None:
    done = run_cli("sweep", str(_sweep_file(tmp_path)), "--cluster", "tcp://127.0.0.1:9",
                   "--out", str(tmp_path / "out"), timeout=60)  # fmt: skip
    assert done.returncode == 2, done.output
    assert "no Dask scheduler answers" in done.output and "Traceback" not in done.output

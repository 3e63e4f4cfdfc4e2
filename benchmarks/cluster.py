"""The Dask cluster path against the local runner: per-run overhead, and what a second worker buys.

Why: its cost. A sweep sent to a cluster pays for the scheduler, the task, the batch's
child process and the row's trip through a Dask queue; on the same machine with the same number
of jobs it should cost at most 10 % more than the local runner. And two workers should do about
twice the runs per minute of one, as long as the machine has the cores.

How: one sweep (`--sweep`, default `benchmarks/sweeps/nat-matrix.yaml`), run (1) locally with
`--jobs J`; (2) on a local cluster of one worker with J threads; (3) on two workers with J
threads each; each into a fresh results directory. The cluster is a real `dask scheduler` and
`dask worker` processes on 127.0.0.1 (no nanny), started and stopped here. Reported: wall time,
runs, runs per minute, and the cluster's overhead against the local runner.
Optionally (`--population N`) a population of N calls from `scenarios/mixes/field.yaml` on the
two-worker cluster: wall time and calls per minute.

With `--big-repeat 5`, the sweep again with 5 repetitions per point on the two-worker cluster
(for the default sweep: the 5 x 5 NAT presets x 5, 125 runs).

Usage: .venv/bin/python benchmarks/cluster.py [--sweep FILE] [--jobs 1] [--population 500]
       [--big-repeat 5] [--json]   (as root; nothing else timing-sensitive on the machine)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from _runner import BenchmarkError, run_benchmark
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
DASK = str(Path(sys.executable).with_name("dask"))
SIMNET = str(Path(sys.executable).with_name("simnet"))


@contextlib.contextmanager
def local_cluster(workers: int, threads: int, logs: Path) -> Iterator[str]:
    """A real scheduler and `workers` workers on 127.0.0.1; yields the scheduler's address."""
    from distributed import Client

    scheduler_file = logs / "scheduler.json"
    processes = []

    def spawn(name: str, *args: str) -> None:
        with open(logs / f"{name}.log", "wb") as log:
            processes.append(
                subprocess.Popen(
                    [DASK, *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )

    spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
          "--scheduler-file", str(scheduler_file))  # fmt: skip
    deadline = time.monotonic() + 60
    while not scheduler_file.exists():  # the scheduler writes it once it listens
        if time.monotonic() > deadline:
            raise BenchmarkError("the Dask scheduler did not start within 60 s")
        time.sleep(0.1)
    address = json.loads(scheduler_file.read_text())["address"]
    try:
        for i in range(workers):
            spawn(f"w{i}", "worker", address, "--name", f"w{i}", "--nthreads", str(threads),
                  "--no-nanny", "--no-dashboard", "--host", "127.0.0.1")  # fmt: skip
        with Client(address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def timed(argv: list[str]) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise BenchmarkError(f"{' '.join(argv[:3])} failed: {done.stderr.strip()[-400:]}")
    return wall, done.stdout


def rows_in(out: Path) -> int:
    from simnet.results.store import load

    return len(load(out))


def _with_repeat(sweep: Path, repeat: int) -> dict[str, Any]:
    """The sweep file with another `repeat`, its scenario path made absolute (the copy lives
    elsewhere)."""
    spec = yaml.safe_load(sweep.read_text())
    spec["scenario"] = str((sweep.parent / spec["scenario"]).resolve())
    spec["repeat"] = repeat
    return dict(spec)


def measure(sweep: Path, jobs: int, population: int, big_repeat: int) -> dict[str, Any]:
    result: dict[str, Any] = {"sweep": str(sweep), "jobs": jobs, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="simnet-cluster-bench-") as tmp:
        base = Path(tmp)
        configs: list[tuple[str, int | None]] = [
            ("local", None),
            ("cluster-1", 1),
            ("cluster-2", 2),
        ]
        for name, workers in configs:
            out = base / name
            argv = [SIMNET, "sweep", str(sweep), "--out", str(out), "--jobs", str(jobs)]
            if workers is None:
                wall, _ = timed(argv)
            else:
                logs = base / f"{name}-logs"
                logs.mkdir()
                with local_cluster(workers, jobs, logs) as address:
                    wall, _ = timed([*argv, "--cluster", address])
            runs = rows_in(out)
            result[name] = {"wall_s": round(wall, 1), "runs": runs,
                            "runs_per_min": round(runs / wall * 60, 1)}  # fmt: skip
        local, one = result["local"]["wall_s"], result["cluster-1"]["wall_s"]
        result["cluster_overhead_pct"] = round((one - local) / local * 100, 1)
        result["two_workers_speedup"] = round(one / result["cluster-2"]["wall_s"], 2)
        if big_repeat:
            big = base / "matrix-5x5.yaml"
            big.write_text(yaml.safe_dump(_with_repeat(sweep, big_repeat)))
            logs = base / "big-logs"
            logs.mkdir()
            out = base / "big"
            with local_cluster(2, jobs, logs) as address:
                wall, _ = timed([SIMNET, "sweep", str(big), "--out", str(out), "--jobs",
                                 str(jobs), "--cluster", address])  # fmt: skip
            runs = rows_in(out)
            result["matrix_on_two_workers"] = {
                "repeat": big_repeat,
                "wall_s": round(wall, 1),
                "runs": runs,
                "runs_per_min": round(runs / wall * 60, 1),
            }
        if population:
            logs = base / "population-logs"
            logs.mkdir()
            with local_cluster(2, jobs, logs) as address:
                mix = str(ROOT / "scenarios/mixes/field.yaml")
                wall, stdout = timed(
                    [SIMNET, "population", mix, "--calls", str(population), "--seed", "1",
                     "--json", "--cluster", address, "--out", str(base / "population")]
                )  # fmt: skip
            result["population"] = {"calls": population, "wall_s": round(wall, 1),
                                    "calls_per_min": round(population / wall * 60, 1),
                                    "estimate": json.loads(stdout)}  # fmt: skip
    return result


def show(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"{result['sweep']} (--jobs {result['jobs']}, {result['cpus']} CPUs)")
    for column in ("runner", "wall s", "runs", "runs/min"):
        table.add_column(column)
    for name in ("local", "cluster-1", "cluster-2"):
        f = result[name]
        table.add_row(name, str(f["wall_s"]), str(f["runs"]), str(f["runs_per_min"]))
    console.print(table)
    console.print(
        f"cluster overhead against the local runner: {result['cluster_overhead_pct']} % "
        f"(target <= 10 %); two workers against one: x{result['two_workers_speedup']}",
        markup=False,
    )
    if "matrix_on_two_workers" in result:
        m = result["matrix_on_two_workers"]
        console.print(
            f"the sweep x{m['repeat']} on two workers: {m['runs']} runs in {m['wall_s']} s "
            f"({m['runs_per_min']} runs/min)",
            markup=False,
        )
    if "population" in result:
        p = result["population"]
        e = p["estimate"]
        console.print(
            f"population of {p['calls']} calls on two workers: {p['wall_s']} s "
            f"({p['calls_per_min']} calls/min); relayed {e['relay_share'] * 100:.1f} % "
            f"[{e['relay_share_ci_low'] * 100:.1f}, {e['relay_share_ci_high'] * 100:.1f}]",
            markup=False,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "benchmarks/sweeps/nat-matrix.yaml")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--population", type=int, default=0)
    parser.add_argument(
        "--big-repeat", type=int, default=0, help="also the sweep with this repeat on two workers"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    return run_benchmark(
        lambda: measure(args.sweep, args.jobs, args.population, args.big_repeat),
        lambda r: show(r, Console()),
        as_json=args.json,
        log=Console(stderr=True),
    )


if __name__ == "__main__":
    sys.exit(main())

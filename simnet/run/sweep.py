"""Sweeps: one scenario, many variants, run in parallel, resumable, one Parquet row per run.

A benchmark is rarely one call: the question is how set-up time or the path changes when one knob
(a NAT preset, the ICE policy, the TURN transport, the data size) changes. A **sweep file** names a
base scenario and the knobs to vary:

```yaml
scenario: ../../scenarios/home-vs-carrier.yaml   # relative to the sweep file
set: {nats.carrier.udp_timeout_s: null}          # fixed overrides for every point (optional)
axes:                                             # every combination is a point ...
  nats.home.preset: [full-cone, symmetric]
  call.turn_transports: [[udp], [tcp]]
points:                                           # ... or list the points instead of `axes`
  - {nats.home.preset: full-cone, call.ice_policy: relay}
repeat: 3                                         # runs per point
```

What a sweep runs is planned by `simnet.run.sweep_plan` (the sweep file, its points, what is
still to do).

Running (`run_sweep`) hands batches of runs to worker processes started with the "spawn" method
(a fresh interpreter: no inherited event loops, netlink sockets or signal handlers). Each batch
builds its own network (unique run id, so batches never collide), makes its calls between warm
agents and streams each row back; the parent alone writes rows, the moment they arrive. A single
writer, and workers that die with the parent (PR_SET_PDEATHSIG), mean nothing can add a row behind
a resumed sweep's back. Interrupted (Ctrl-C, SIGTERM), the parent keeps every row that arrived,
kills its workers and removes their networks; after a `kill -9` of the parent, `simnet cleanup`
removes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import multiprocessing
import os
import queue as queue_module
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simnet.cleanup import remove_run
from simnet.doctor import require_root
from simnet.errors import ScenarioError, SimnetError
from simnet.net.plan import plan_network
from simnet.net.registry import owner_alive, read_states
from simnet.results import ResultStore, load
from simnet.results.outputs import check_output_dir
from simnet.results.schema import ResultRow
from simnet.run.calls import run_scenario
from simnet.run.cluster import cluster_threads, execute_on_cluster, sweep_batches
from simnet.run.one_call import call_of
from simnet.run.sweep_plan import (
    Point,
    SweepSpec,
    batches,
    load_sweep,
    pending_runs,
    plan_sweep,
)
from simnet.scenario.load import load_scenario, read_scenario_data, scenario_from_dict, source_of
from simnet.signals import sigterm_raises

SHUTDOWN_DEADLINE_S = 10.0  # for a killed worker to be reaped
POLL_S = 0.1
LATE_ROWS_S = 10.0  # how long rows a finished batch sent may take to arrive through the queue

# --- workers ------------------------------------------------------------------------------------

_rows: Any = None  # the worker's end of the row queue, set by _worker_init
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (even by SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker_init(rows: Any, parent: int) -> None:
    """Tie the worker to the parent: if the parent dies, even by SIGKILL, the kernel kills the
    worker too, so no orphan goes on making calls behind a resumed sweep's back; its network is
    then a dead run's leftovers, which `simnet cleanup` removes."""
    global _rows
    _rows = rows
    die_with_parent(parent)
    # Ctrl-C in a terminal reaches the whole process group; the parent alone decides what stops.
    # (A handler, not SIG_IGN: an ignored signal would stay ignored in the processes we start.)
    signal.signal(signal.SIGINT, _ignore)


def _ignore(signum: int, frame: Any) -> None:
    """SIGINT in a worker: the parent handles it."""


def _run_batch(
    index: int, scenario_path: str, sweep_name: str, batch: list[Point]
) -> tuple[int, str | None]:
    """In a worker: build the point's network, make len(batch) calls, stream each row back.

    Returns how many rows it sent (so the parent knows when all have arrived) and the error that
    cut the batch short, if any. Interruptions (`Terminated`) propagate: the parent is stopping.
    """
    sent = 0

    def on_row(row: ResultRow) -> None:
        nonlocal sent
        # `run` becomes the repetition: the index within this batch would mean nothing later
        point = batch[sent]
        _rows.put((index, row.placed(run=point.repetition, sweep=sweep_name, **point.columns())))
        sent += 1

    try:
        overrides = batch[0].set_args()
        scenario = load_scenario(scenario_path, overrides)
        run_scenario(scenario, len(batch), on_row, overrides=overrides)
    except Exception as exc:
        return sent, f"{type(exc).__name__}: {exc}"
    return sent, None


# --- running ----------------------------------------------------------------------------------


@dataclass
class SweepSummary:
    """What a sweep did: planned runs, those already stored, those written now, what went wrong."""

    name: str
    out_dir: Path
    planned: int
    skipped: int = 0
    written: int = 0
    connected: int = 0
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def missing(self) -> int:
        return self.planned - self.skipped - self.written

    @property
    def complete(self) -> bool:
        return self.missing == 0


def check_points(sweep: SweepSpec, runs: Sequence[Point], where: str | None = None) -> None:
    """Validate every point's scenario, its call and its addresses (the network plan) before
    anything is built: a typo, or a LAN too small for its hosts, fails in a second, not an
    hour into the sweep (where "run again with --resume" could never help). `where` (the sweep
    file) starts each error; the base scenario is read once."""
    where = where or f"sweep {sweep.name}"
    try:
        base = read_scenario_data(sweep.scenario)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: scenario: {exc.message}", fix=exc.fix) from None
    points = [run for run in runs if run.repetition == 0]
    for number, run in enumerate(points, 1):
        overrides = run.set_args()
        source = source_of(sweep.scenario, overrides)
        try:
            scenario = scenario_from_dict(base, overrides, source=str(sweep.scenario))
            call_of(scenario, source)
            try:
                plan_network(scenario)
            except ScenarioError as exc:
                raise ScenarioError(f"{source}: {exc.message}", fix=exc.fix) from None
        except ScenarioError as exc:
            raise ScenarioError(
                f"{where}: point {number} of {len(points)} ({_shown(run.axes)}): {exc.message}",
                fix=exc.fix,
            ) from None


def _shown(axes: dict[str, Any], limit: int = 120) -> str:
    """A point's varied values as `path=value` (JSON), cut to `limit` characters."""
    text = ", ".join(f"{path}={json.dumps(value)}" for path, value in axes.items())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_sweep(
    sweep_file: Path,
    out_dir: Path,
    jobs: int = 1,
    resume: bool = False,
    *,
    on_progress: ProgressSink | None = None,
    cluster: str | None = None,
) -> SweepSummary:
    """Run every planned run not yet in `out_dir`, `jobs` networks at a time; rows are written
    as each run ends. Without `resume`, an `out_dir` that already holds rows of this sweep is an
    error (adding to it would give some points twice as many runs). `on_progress(what, done,
    total)` is called before the first run and after each (the CLI draws a progress bar). With
    `cluster` (a Dask scheduler's address), the runs go to its workers (`simnet.run.cluster`),
    as many at once as they have threads."""

    if jobs < 1:
        raise SimnetError(f"jobs must be at least 1 (got {jobs})")
    sweep = load_sweep(sweep_file)
    planned = plan_sweep(sweep)
    check_points(sweep, planned, str(sweep_file))
    check_output_dir(out_dir, "--out")  # before any run: a row that cannot be stored is lost
    existing = load(out_dir) if out_dir.exists() else None
    if existing is None or existing.empty:
        todo = list(planned)
    else:
        todo = pending_runs(planned, existing, sweep.name)
        if not resume and len(todo) < len(planned):
            raise SimnetError(
                f"{out_dir} already holds {len(planned) - len(todo)} run(s) of sweep {sweep.name}",
                fix="resume it (resume=True / --resume) or choose another results directory",
            )
    summary = SweepSummary(sweep.name, out_dir, len(planned), skipped=len(planned) - len(todo))
    if not todo:
        return summary
    if cluster is None:
        require_root()
    else:
        jobs = cluster_threads(cluster)
    store = ResultStore(out_dir, sweep.name)
    work = batches(todo, jobs)
    started = time.monotonic()
    resumed = f" ({summary.skipped} already done)" if summary.skipped else ""
    what = f"sweep {sweep.name}{resumed}"
    report = on_progress or (lambda what, done, total: None)
    report(what, 0, len(todo))

    def write(row: ResultRow) -> None:
        # parallel networks share the CPU, which slows set-up and lowers goodput: say how
        # many ran at once, so that only comparable rows get compared
        store.write(row.placed(sweep_jobs=jobs))
        summary.written += 1
        summary.connected += bool(row.get("connected"))
        report(what, summary.written, len(todo))

    try:
        if cluster is None:
            _execute(sweep, work, jobs, write, summary.errors)
        else:
            execute_on_cluster(cluster, sweep_batches(sweep, work), write, summary.errors)
    finally:
        summary.elapsed_s = time.monotonic() - started
    return summary


RowSink = Callable[[ResultRow], None]
ProgressSink = Callable[[str, int, int], None]  # what, runs done, runs to do


def _execute(
    sweep: SweepSpec, work: list[list[Point]], jobs: int, write: RowSink, errors: list[str]
) -> None:
    """Run the batches in a spawn-context process pool; the calling thread writes every row."""
    context = multiprocessing.get_context("spawn")
    rows = context.Queue()
    received = [0] * len(work)
    with sigterm_raises():
        executor = ProcessPoolExecutor(
            max_workers=min(jobs, len(work)),
            mp_context=context,
            initializer=_worker_init,
            initargs=(rows, os.getpid()),
        )
        futures: dict[Future[tuple[int, str | None]], int] = {}
        try:
            for index, batch in enumerate(work):
                future = executor.submit(_run_batch, index, str(sweep.scenario), sweep.name, batch)
                futures[future] = index
            sent: dict[int, int] = {}  # batch -> rows it sent, once it has finished
            all_done_at: float | None = None
            while len(sent) < len(work) or sum(received) < sum(sent.values()):
                _drain(rows, received, write, POLL_S)
                for future, index in futures.items():
                    if index in sent or not future.done():
                        continue
                    exc = future.exception()
                    error = f"{type(exc).__name__}: {exc}" if exc is not None else None
                    count = received[index]  # a dead worker: what arrived is all there is
                    if exc is None:
                        count, error = future.result()
                    sent[index] = count
                    if error is not None:
                        errors.append(_failed(work[index], error))
                if len(sent) == len(work):
                    all_done_at = all_done_at or time.monotonic()
                    if time.monotonic() - all_done_at > LATE_ROWS_S:
                        errors.append(f"{sum(sent.values()) - sum(received)} row(s) were lost")
                        break
            executor.shutdown(wait=True)
        except BaseException:
            _stop(executor, rows, received, write)
            raise


def _failed(batch: list[Point], error: str) -> str:
    reps = ", ".join(str(p.repetition) for p in batch)
    return f"point {batch[0].point_id} {batch[0].axes} (repetitions {reps}): {error}"


def _drain(rows: Any, received: list[int], write: RowSink, timeout: float) -> None:
    """Write every row waiting in the queue (waiting up to `timeout` for the first)."""
    try:
        index, row = rows.get(timeout=timeout)
    except queue_module.Empty:
        return
    while True:
        received[index] += 1
        write(row)
        try:
            index, row = rows.get_nowait()
        except queue_module.Empty:
            return


def _stop(executor: ProcessPoolExecutor, rows: Any, received: list[int], write: RowSink) -> None:
    """Interrupted: keep the rows that have arrived, kill the workers, remove their networks.

    Workers are killed rather than asked to stop: a SIGTERM that lands inside an asyncio
    callback is swallowed by the event loop, and the run then goes on (or hangs until a phase
    timeout). SIGKILL followed by removing what each worker's run registered (its state file
    lists its namespaces and processes) is immediate and complete.
    """
    processes = list((getattr(executor, "_processes", None) or {}).values())
    pids = {p.pid for p in processes if p.pid is not None}
    with _signals_ignored():
        # Drain while every writer is alive: a worker killed in the middle of a message would
        # leave half of it in the pipe, and reading that would block forever.
        with contextlib.suppress(Exception):
            _drain(rows, received, write, 0)
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        for process in processes:
            process.join(SHUTDOWN_DEADLINE_S)
        executor.shutdown(wait=False, cancel_futures=True)
        remove_runs_of(pids)


def remove_runs_of(owners: set[int]) -> list[str]:
    """Remove the runs (processes, namespaces, state) whose owner was one of `owners` and is dead.

    Like `simnet cleanup`, but only for the sweep's own workers: other runs on the machine,
    dead or alive, are not this sweep's business. Returns the run ids removed.
    """
    removed = []
    for state in read_states():
        if state.get("owner_pid") not in owners or owner_alive(state):
            continue
        run_id = str(state.get("id"))
        remove_run(state)
        removed.append(run_id)
    return removed


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """A second Ctrl-C or SIGTERM must not cut the workers' teardown short."""
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in watched}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

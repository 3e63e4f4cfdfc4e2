"""Sweeps on a Dask cluster: `simnet sweep FILE --cluster tcp://HOST:PORT`.

Why Dask distributed: a sweep is independent runs that each return rows, which is exactly what
its scheduler does well (placement, a lost worker's tasks rescheduled, results back to the
client); simnet adds only what is specific to it:

- **What a worker gets.** A batch (the runs of one point, as the local runner groups them,
  `simnet.run.sweep_plan.batches`) with the point's scenario already loaded and validated on the
  client, as JSON: workers need simnet installed, not the scenario files.
- **How a worker runs it.** In a child process (`python -m simnet.run.batch`), not in the
  worker's thread: a run owns signal handlers and namespace state that belong to a main thread.
  The worker keeps its children between batches (imports paid once, as in the local runner's
  pool), and a child dies with the worker if the worker is killed.
- **Rows as each run ends.** The task relays each row through a Dask `Queue` the moment its
  child prints it; the client writes it at once. A task rerun after a worker was lost may send
  a repetition again: the client keeps the first row of each (point id, repetition), so the
  sweep ends with exactly one row per planned run. Each row names its `worker` ("host/name").
- **Nothing left behind.** A worker plugin removes dead runs (their owner gone: a killed
  worker's) when it is registered and before each batch, and the client has every worker do so
  once more at the end; live runs of other workers on the same machine are never touched.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simnet.aio import within
from simnet.cleanup import cleanup
from simnet.errors import EnvironmentProblem, printable
from simnet.results.schema import ResultRow
from simnet.run.batch_stream import END, LIFELINE_ENV, decode_row
from simnet.run.sweep_plan import Point, SweepSpec
from simnet.scenario.load import load_scenario

CONNECT_TIMEOUT_S = 5.0
HANDSHAKE_DEADLINE_S = 10.0  # connect, Dask's handshake and the scheduler's identity, together
POLL_S = 0.2
SCHEMES = ("tcp",)  # what simnet's workers are reached by; Dask's others (tls, ucx, ws) are not
SHOWN_CHARS = 80  # of an address or a peer's answer, in an error
HOW_TO_START = (
    "start one (`dask scheduler`) and workers as root (`dask worker ADDRESS`), "
    "and give its address as tcp://HOST:PORT (or HOST:PORT), "
    "or leave --cluster out to run on this machine"
)


def remove_dead_runs() -> list[str]:
    """On a worker's machine: what `simnet cleanup` does (every run whose owner has died, a
    killed worker's included; live runs untouched). Returns the namespaces removed."""
    return cleanup().namespaces


def _cleanup_plugin() -> Any:
    from distributed.diagnostics.plugin import WorkerPlugin  # Dask: about 1 s, --cluster only

    class SimnetCleanup(WorkerPlugin):
        """Removes dead runs on the worker's machine when registered (a worker that died
        before left them)."""

        name = "simnet-cleanup"

        def setup(self, worker: Any) -> None:
            remove_dead_runs()

    return SimnetCleanup()


@dataclass(frozen=True)
class Batch:
    """Calls of one scenario to make on one worker, in one network.

    `runs` holds, per call, the columns its row gets (a sweep's point and repetition, a
    population call's classes); `keys` names each call uniquely, so a batch sent twice (its
    worker was lost) gives each call one row."""

    scenario_json: str
    overrides: list[str]
    runs: list[dict[str, Any]]
    keys: list[str]


class BatchChild:
    """A long-lived `python -m simnet.run.batch` on a worker, handed one batch at a time."""

    def __init__(self) -> None:
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (lives as long as the child)
        read, self.lifeline = os.pipe()  # the write end stays here, never written to
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "simnet.run.batch"],
                env={**os.environ, LIFELINE_ENV: str(read)},
                pass_fds=(read,),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log,
                text=True,
            )
        finally:
            os.close(read)

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, job: dict[str, Any], relay: Callable[[str], None]) -> int:
        """Send `job`, `relay` each row line until the job's end; how many rows came. A child
        that dies first is an error naming the last lines of its log."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        sent = 0
        try:
            stdin.write(json.dumps(job) + "\n")
            stdin.flush()
            while line := stdout.readline():
                if line.strip() == END:
                    return sent
                relay(line.strip())
                sent += 1
        except BrokenPipeError:
            pass
        self.close()
        self.log.seek(0)
        tail = self.log.read().strip().splitlines()[-3:]
        raise RuntimeError(" | ".join(tail) or f"exit {self.process.returncode}")

    def close(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        os.close(self.lifeline)
        self.log.close()


_idle: list[BatchChild] = []  # this worker's batch processes between two batches
_idle_lock = threading.Lock()


def _idle_child() -> BatchChild | None:
    with _idle_lock:
        while _idle:
            child = _idle.pop()
            if child.alive():
                return child
            child.close()
    return None


def run_batch_task(queue_name: str, batch: Batch) -> int:
    """On a worker: run one batch in one of the worker's batch processes (a new one if none is
    idle), relay each row as it comes; returns how many rows were sent. A failing child is an
    error of the task (the client records it)."""
    from distributed import Queue, get_worker  # Dask: about 1 s, --cluster only

    label = f"{socket.gethostname()}/{get_worker().name}"
    remove_dead_runs()
    queue = Queue(queue_name)
    job = {
        "scenario": json.loads(batch.scenario_json),
        "overrides": batch.overrides,
        "runs": [{**columns, "worker": label} for columns in batch.runs],
        "keys": batch.keys,
    }
    child = _idle_child() or BatchChild()
    try:
        sent = child.run(job, queue.put)
    except RuntimeError as exc:
        raise RuntimeError(f"batch on {label} failed: {exc}") from None
    with _idle_lock:
        _idle.append(child)
    return sent


def _shown(value: object) -> str:
    text = printable(value, newlines=False)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def check_address(address: str) -> str:
    """`address` as Dask reads it (`tcp://HOST:PORT`; a bare `HOST:PORT` is TCP), or an error
    (exit 2) for a scheme simnet does not support or an address without a host."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme.lower() not in SCHEMES:
        raise EnvironmentProblem(
            f"--cluster {_shown(address)}: the scheme {_shown(scheme)}:// is not supported "
            "(simnet reaches a Dask scheduler over tcp:// only)",
            fix="give the scheduler's address as tcp://HOST:PORT or HOST:PORT",
        )
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not host or any(ch.isspace() or not ch.isprintable() for ch in rest) or "/" in rest:
        raise EnvironmentProblem(
            f"--cluster {_shown(address)}: not an address (want tcp://HOST:PORT)",
            fix="give the scheduler's address as tcp://HOST:PORT or HOST:PORT",
        )
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise EnvironmentProblem(
            f"--cluster {_shown(address)}: the port {_shown(port)} is not a number 1-65535",
            fix="give the scheduler's address as tcp://HOST:PORT or HOST:PORT",
        )
    return f"tcp://{rest}"


async def _identity(address: str) -> object:
    """The answer of whatever listens at `address` to Dask's handshake and `identity` call."""
    from distributed.comm.core import connect as comm_connect  # Dask: --cluster only

    comm = await comm_connect(address, timeout=CONNECT_TIMEOUT_S)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def _reachable(address: str) -> None:
    """A TCP connection to `address` opens within the connect timeout, or an error (exit 2)
    saying nothing answers there."""
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    try:
        socket.create_connection(
            (host.strip("[]"), int(port or 8786)), timeout=CONNECT_TIMEOUT_S
        ).close()
    except OSError as exc:
        raise EnvironmentProblem(
            f"--cluster {_shown(address)}: no Dask scheduler answers there ({_shown(exc)})",
            fix=HOW_TO_START,
        ) from None


def probe_scheduler(address: str, deadline_s: float = HANDSHAKE_DEADLINE_S) -> None:
    """Check that a Dask scheduler answers at `address` (as `check_address` returns it): the
    port must accept within the connect timeout, and then Dask's handshake and the scheduler's
    identity must come within `deadline_s` together, so that a port that accepts and never
    answers, an HTTP server or one that floods are errors (exit 2), not a hang or a crash
    inside Dask's reader."""
    _reachable(address)

    async def bounded() -> object:
        return await within(_identity(address), deadline_s)

    try:
        answer = asyncio.run(bounded())
    except TimeoutError:
        problem = f"no answer to Dask's handshake within {deadline_s:g} s"
    except Exception as exc:  # whatever Dask's reader makes of a foreign answer
        problem = f"its answer is not Dask's protocol: {type(exc).__name__}: {exc}"
    else:
        kind = answer.get("type") if isinstance(answer, dict) else None
        if kind == "Scheduler":
            return
        problem = f"it answered as {kind or type(answer).__name__}, not a Scheduler"
    raise EnvironmentProblem(
        f"--cluster {_shown(address)}: not a Dask scheduler ({_shown(problem)})",
        fix=HOW_TO_START,
    )


def connect(address: str) -> Any:
    """A client of the scheduler at `address`; an address simnet cannot use, an unreachable
    scheduler or something else listening there is an environment problem (exit 2) that says
    how to start one."""
    from distributed import Client  # Dask: about 1 s, paid only by runs with --cluster

    target = check_address(address)
    probe_scheduler(target)
    try:
        return Client(target, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise EnvironmentProblem(
            f"--cluster {_shown(address)}: no Dask scheduler answers there ({_shown(exc)})",
            fix=HOW_TO_START,
        ) from None


def cluster_threads(address: str) -> int:
    """How many runs the cluster at `address` takes at once (its workers' threads); an error
    (exit 2) when it has no worker."""
    client = connect(address)
    try:
        threads = sum(client.nthreads().values())
    finally:
        client.close()
    if threads == 0:
        raise EnvironmentProblem(
            f"--cluster {_shown(address)}: the scheduler has no workers",
            fix="start workers as root on machines with simnet: `dask worker ADDRESS`",
        )
    return int(threads)


def sweep_batches(sweep: SweepSpec, work: list[list[Point]]) -> list[Batch]:
    """A sweep's batches for the cluster: each point's scenario loaded (and validated) here."""
    out = []
    for runs in work:
        overrides = runs[0].set_args()
        scenario = load_scenario(sweep.scenario, overrides)
        out.append(
            Batch(
                scenario_json=scenario.model_dump_json(),
                overrides=overrides,
                runs=[{"run": p.repetition, "sweep": sweep.name, **p.columns()} for p in runs],
                keys=[f"{p.point_id}/{p.repetition}" for p in runs],
            )
        )
    return out


def execute_on_cluster(
    address: str, batches: list[Batch], write: Callable[[ResultRow], None], errors: list[str]
) -> None:
    """Run `batches` on the cluster at `address`; `write` each call's row as it arrives (the
    first one of each key: a rerun batch sends its calls again)."""
    from distributed import Queue, as_completed  # Dask: about 1 s, --cluster only

    client = connect(address)
    try:
        client.register_plugin(_cleanup_plugin())
        queue = Queue(f"simnet-rows-{uuid.uuid4().hex[:12]}", client=client)
        futures = {
            client.submit(run_batch_task, queue.name, batch, pure=False): batch for batch in batches
        }
        seen: set[str] = set()

        def take(timeout: float) -> bool:
            """Write the next row if one comes within `timeout`; False if none came."""
            try:
                line = queue.get(timeout=timeout)
            except TimeoutError:
                return False
            key, row = decode_row(line)
            if key not in seen:
                seen.add(key)
                write(row)
            return True

        pending = as_completed(list(futures))
        while not pending.is_empty():
            take(POLL_S)
            while pending.has_ready():
                future = next(pending)
                if future.status == "error":
                    batch = futures[future]
                    errors.append(f"{batch.keys[0]}..: {future.exception()}")
        while take(1.0):  # rows still on their way
            pass
        client.run(remove_dead_runs)
    finally:
        client.close()

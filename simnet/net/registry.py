"""The registry of one run: every kernel object and process it creates, removed at the end.

(`simnet.run` is the job layer that makes calls, sweeps and probes; this module is only the
record of what such a job created, so `simnet cleanup` can find it after a crash.)

Each run has a short random id; its namespaces are named `sn-<id>-<node>` so concurrent runs never
collide and leftovers of a killed run can be found by prefix. A state file in /run/simnet records
the owner's pid and what was created, written *before* each object is created, so that
`simnet cleanup` can tell a dead run's leftovers from a live run's network.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from simnet.net import netns
from simnet.net.run_tag import tagged_pids
from simnet.signals import signals_deferred

PREFIX = "sn-"
STATE_DIR = Path("/run/simnet")
KILL_GRACE_S = 2.0


class Run:
    """Registry of what one run created; a context manager that tears it all down."""

    def __init__(self, label: str = "", run_id: str | None = None) -> None:
        self.id = run_id or secrets.token_hex(3)
        self.label = label
        self.namespaces: list[str] = []
        self.pids: list[int] = []
        self.pid_starts: dict[int, int | None] = {}
        self.processes: list[dict[str, Any]] = []  # managed processes, named before their fork
        self.info: dict[str, Any] = {}
        self.paths: list[str] = []  # files and directories made outside the work directory
        self.state_path = STATE_DIR / f"{self.id}.json"
        self.closed = False

    def ns_name(self, node: str) -> str:
        return f"{PREFIX}{self.id}-{node}"

    def register_namespace(self, name: str) -> None:
        self.namespaces.append(name)
        self.save()

    def register_path(self, path: Path) -> None:
        """Name a file or directory outside the work directory (a namespace's /etc/netns
        entry) before it is made, so that teardown and `simnet cleanup` remove it."""
        self.paths.append(str(path))
        self.save()

    def register_pending(self, name: str, ns: str | None, argv: list[str]) -> None:
        """Name a process in the state file before it is forked (`simnet.net.process.start`): a dead
        owner's state then shows what it was starting, and cleanup finds the process by the
        run id in its environment even if its pid was never written."""
        self.processes.append({"name": name, "ns": ns, "argv": argv, "pid": None})
        self.save()

    def register_process(self, pid: int, name: str | None = None) -> None:
        self.pids.append(pid)
        self.pid_starts[pid] = _start_time(pid)
        for entry in reversed(self.processes):
            if entry["name"] == name and entry["pid"] is None:
                entry["pid"] = pid
                break
        self.save()

    @property
    def workdir(self) -> Path:
        """A directory for the run's files (configs, certificates, logs), removed at teardown."""
        path = STATE_DIR / f"{self.id}.d"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        state = {
            "id": self.id,
            "label": self.label,
            "owner_pid": os.getpid(),
            "owner_start": _start_time(os.getpid()),
            "namespaces": self.namespaces,
            "pids": self.pids,
            "pid_starts": {str(p): s for p, s in self.pid_starts.items()},
            "processes": self.processes,
            "paths": self.paths,
            **self.info,
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, default=str))
        tmp.replace(self.state_path)

    def __enter__(self) -> Run:
        self.save()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.teardown()

    def teardown(self) -> None:
        """Kill the run's processes and remove its namespaces; safe to call twice."""
        if self.closed:
            return
        with signals_deferred():
            kill_processes([*self.pids, *tagged_pids(self.id)])
            remove_namespaces(self.namespaces)
            remove_paths(self.paths)
            shutil.rmtree(STATE_DIR / f"{self.id}.d", ignore_errors=True)
            self.state_path.unlink(missing_ok=True)
            self.closed = True


def kill_processes(pids: list[int]) -> None:
    """SIGTERM each process group, then SIGKILL what is still alive after a grace period."""
    alive = [p for p in pids if _alive(p)]
    for pid in alive:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _reap(p)]
        if alive:
            time.sleep(0.02)
    for pid in alive:
        _signal_group(pid, signal.SIGKILL)
        _reap(pid)


def remove_paths(paths: list[str]) -> None:
    """Remove the files and directories a run registered (`Run.register_path`); gone ones
    are skipped."""
    for name in paths:
        path = Path(name)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def remove_namespaces(names: list[str]) -> None:
    """Kill whatever still runs inside the namespaces, then remove them (their links go too).

    Every namespace is tried; one hidden under a later mount (`netns.ShadowedNamespace`) does
    not stop the others, and the first such is raised at the end."""
    stragglers = [pid for name in names for pid in netns.pids_in(name) if pid != os.getpid()]
    if stragglers:
        kill_processes(stragglers)
    shadowed: list[netns.ShadowedNamespace] = []
    for name in names:
        try:
            netns.remove(name)
        except netns.ShadowedNamespace as exc:
            shadowed.append(exc)
    if shadowed:
        raise shadowed[0]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _reap(pid: int) -> bool:
    """True while `pid` is alive; reaps it if it is our child (`/proc` only for others)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return _alive(pid)
    return done == 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def recorded_pids(state: dict[str, Any]) -> list[int]:
    """The run's processes that are still the processes it started (pids get reused)."""
    starts = state.get("pid_starts", {})
    return [
        pid
        for pid in state.get("pids", [])
        if isinstance(pid, int) and _alive(pid) and _start_time(pid) == starts.get(str(pid))
    ]


def owner_alive(state: dict[str, Any]) -> bool:
    """Is the process that wrote this state file still the same live process?"""
    pid = state.get("owner_pid")
    if not isinstance(pid, int) or not _alive(pid):
        return False
    return _start_time(pid) == state.get("owner_start")


def read_states() -> list[dict[str, Any]]:
    states = []
    for path in sorted(STATE_DIR.glob("*.json")) if STATE_DIR.exists() else []:
        try:
            states.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return states

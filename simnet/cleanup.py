"""`simnet cleanup`: remove what runs that died without tearing down (kill -9) left behind.

That is their processes (tayga and unbound among them: they carry the run's tag), namespaces,
work directories, state files and the files they made outside those (/etc/netns/<namespace>).

A namespace belongs to run `<id>` if it is named `sn-<id>-...`. A run is alive while the process
recorded in its state file is; cleanup leaves live runs alone unless asked to remove everything.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simnet.errors import EnvironmentProblem
from simnet.net import netns, resolv
from simnet.net.registry import (
    PREFIX,
    STATE_DIR,
    kill_processes,
    owner_alive,
    read_states,
    recorded_pids,
    remove_namespaces,
    remove_paths,
)
from simnet.net.run_tag import tagged_pids


@dataclass
class CleanupReport:
    namespaces: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    state_files: list[str] = field(default_factory=list)
    kept_live_runs: list[str] = field(default_factory=list)


def run_id_of(namespace: str) -> str:
    return namespace.removeprefix(PREFIX).split("-", 1)[0]


def remove_run(
    state: dict[str, Any], extra_pids: Sequence[int] = ()
) -> tuple[list[int], list[str]]:
    """Remove one run recorded in `state`: its processes, namespaces, work dir and state file.

    Returns the processes signalled and the namespaces removed.
    """
    run_id = str(state.get("id"))
    recorded = recorded_pids(state)
    # a process whose pid never reached the state file is found by the run id it carries
    tagged = [p for p in tagged_pids(run_id) if p not in recorded]
    pids = [p for p in recorded + tagged if p != os.getpid()] + list(extra_pids)
    kill_processes(pids)
    names = set(state.get("namespaces", [])) | set(netns.list_names(f"{PREFIX}{run_id}-"))
    doomed = sorted(n for n in names if netns.exists(n))
    pids += [p for n in doomed for p in netns.pids_in(n)]
    # one hidden under a later mount is left to `cleanup`'s last sweep, once the others are gone
    with contextlib.suppress(netns.ShadowedNamespace):
        remove_namespaces(doomed)
    # what the run registered, and what it made before it could: only its own /etc/netns entries
    own = f"{PREFIX}{run_id}-"
    recorded_paths = [p for p in state.get("paths", []) if _own_netns_entry(p, own)]
    remove_paths(recorded_paths + [str(p) for p in resolv.ETC_NETNS.glob(f"{own}*")])
    shutil.rmtree(STATE_DIR / f"{run_id}.d", ignore_errors=True)
    (STATE_DIR / f"{run_id}.json").unlink(missing_ok=True)
    return pids, doomed


def _own_netns_entry(path: object, prefix: str) -> bool:
    """Is `path` (read from a state file) a /etc/netns entry of a namespace named `prefix...`?"""
    if not isinstance(path, str):
        return False
    entry = Path(path)
    return entry.parent == resolv.ETC_NETNS and entry.name.startswith(prefix)


def cleanup(everything: bool = False) -> CleanupReport:
    report = CleanupReport()
    # Namespaces first, states second: a run writes its state before creating any namespace, so
    # every namespace listed here belongs to a state we are about to read (or to a dead run).
    namespaces = netns.list_names(PREFIX)
    states = {s.get("id"): s for s in read_states()}
    live = {rid for rid, s in states.items() if owner_alive(s) and not everything}
    report.kept_live_runs = sorted(str(r) for r in live)
    doomed = [n for n in namespaces if run_id_of(n) not in live and netns.exists(n)]
    for run_id, state in states.items():
        if run_id in live:
            continue
        owner = [int(state["owner_pid"])] if everything and owner_alive(state) else []
        pids, _ = remove_run(state, owner)
        report.processes += pids
        report.state_files.append(str(STATE_DIR / f"{run_id}.json"))
    for workdir in STATE_DIR.glob("*.d") if STATE_DIR.exists() else []:
        if workdir.name.removesuffix(".d") not in live:
            shutil.rmtree(workdir, ignore_errors=True)
    report.processes += [p for n in doomed for p in netns.pids_in(n)]
    _remove_namespaces(doomed)
    remove_paths([str(resolv.ETC_NETNS / n) for n in doomed])  # a state-less run's resolv.conf
    report.namespaces = doomed
    return report


def _remove_namespaces(names: list[str]) -> None:
    """`remove_namespaces`, and for namespaces hidden under a later mount of /run/netns over
    itself (`ip netns` makes one if it finds the directory is no mount point): that mount is
    taken away once nothing is mounted on it, and they are removed from beneath it."""
    try:
        remove_namespaces(names)
    except netns.ShadowedNamespace as exc:
        if not netns.unshadow():
            raise EnvironmentProblem(
                f"{exc.strerror}; other namespaces are still mounted on it",
                fix=f"stop the runs and `ip netns` namespaces still using {netns.NETNS_DIR}, "
                "then run `simnet cleanup` again",
            ) from None
        remove_namespaces([n for n in names if netns.exists(n)])

"""`simnet cleanup`: remove what runs that died without tearing down (kill -9) left behind.

A namespace belongs to run `<id>` if it is named `sn-<id>-...`. A run is alive while the process
recorded in its state file is; cleanup leaves live runs alone unless asked to remove everything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from simnet.net import netns
from simnet.net.run import (
    PREFIX,
    STATE_DIR,
    kill_processes,
    owner_alive,
    read_states,
    remove_namespaces,
)


@dataclass
class CleanupReport:
    namespaces: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    state_files: list[str] = field(default_factory=list)
    kept_live_runs: list[str] = field(default_factory=list)


def run_id_of(namespace: str) -> str:
    return namespace.removeprefix(PREFIX).split("-", 1)[0]


def cleanup(everything: bool = False) -> CleanupReport:
    report = CleanupReport()
    states = {s.get("id"): s for s in read_states()}
    live = {rid for rid, s in states.items() if owner_alive(s) and not everything}
    report.kept_live_runs = sorted(str(r) for r in live)
    doomed = [n for n in netns.list_names(PREFIX) if run_id_of(n) not in live]
    for state in states.values():
        if state.get("id") in live:
            continue
        pids = [p for p in state.get("pids", []) if isinstance(p, int) and p != os.getpid()]
        if everything and owner_alive(state):
            pids.append(int(state["owner_pid"]))
        report.processes += pids
        kill_processes(pids)
        path = STATE_DIR / f"{state.get('id')}.json"
        if path.exists():
            path.unlink()
            report.state_files.append(str(path))
    report.processes += [p for n in doomed for p in netns.pids_in(n)]
    remove_namespaces(doomed)
    report.namespaces = doomed
    return report

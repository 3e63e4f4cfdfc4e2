"""Sweeps on real namespaces: parallel workers, one row per planned run, resume after a kill.

Why: a sweep is only trustworthy if its results directory ends with exactly one row per planned
(point, repetition), however it was interrupted, and if an interruption leaves no network
behind. A sweep is killed here as users kill them (SIGTERM from a supervisor, SIGKILL from the
OOM killer or `kill -9`) right after its first row lands, then resumed. Other simnet runs may be
alive on the machine: only the runs this test's sweeps own (found through the workers' pids and
the rows' run ids) are checked and cleaned.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simnet.errors import SimnetError
from simnet.results import load
from simnet.run.sweep import run_sweep
from simnet.run.sweep_plan import load_sweep, plan_sweep

pytestmark = pytest.mark.integration
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
RUN_SWEEP = (  # `simnet sweep FILE --out DIR --jobs N [--resume]`, in this process
    "import sys; from simnet.cli import main; "
    "sys.argv = ['simnet', 'sweep', sys.argv[1], '--out', sys.argv[2], '--jobs', sys.argv[3]]"
    " + (['--resume'] if sys.argv[4] == 'resume' else []); main()"
)


def _sweep_file(tmp_path: Path, repeat: int, extra: str = "") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        f"scenario: {SCENARIOS / 'direct-lan.yaml'}\n"
        f"set: {{call.data_bytes: 20000{extra}}}\n"
        "axes:\n  call.signaling: [ws, http]\n"
        f"repeat: {repeat}\n"
    )
    return path


def _keys(frame: Any) -> list[tuple[str, int]]:
    return sorted(zip(frame["point_id"], (int(r) for r in frame["repetition"]), strict=True))


def _assert_no_leftovers(tools: Any, runs: dict[str, list[int]] | set[str]) -> None:
    """No namespace, state file or recorded process (agents, coturn) of these runs is left."""
    pids = runs if isinstance(runs, dict) else {run_id: [] for run_id in runs}
    for run_id, recorded in pids.items():
        tools.wait_for(
            lambda r=run_id, p=recorded: not tools.leftovers(r, p), f"run {run_id} to be gone", 30
        )


def test_a_small_sweep_with_two_jobs_stores_one_row_per_run(tmp_path: Path, tools: Any) -> None:
    sweep_file = _sweep_file(tmp_path, repeat=2)
    out = tmp_path / "results"
    summary = run_sweep(sweep_file, out, jobs=2)
    assert summary.complete and summary.written == 4 and not summary.errors, summary
    frame = load(out)
    assert len(frame) == 4
    planned = plan_sweep(load_sweep(sweep_file))
    assert _keys(frame) == sorted(p.key for p in planned)
    assert set(frame["sweep"]) == {"tiny"} and set(frame["sweep_jobs"]) == {2}
    assert sorted(frame["axis.call.signaling"]) == ["http", "http", "ws", "ws"]
    assert frame["connected"].all(), frame[["error", "error_detail"]]
    assert frame["run_id"].nunique() == 2  # one network per point, built by two workers
    _assert_no_leftovers(tools, set(frame["run_id"]))

    with pytest.raises(SimnetError, match="already holds 4 run"):
        run_sweep(sweep_file, out, jobs=2)  # would give every point twice its runs
    again = run_sweep(sweep_file, out, jobs=2, resume=True)  # nothing to do, nothing built
    assert (again.skipped, again.written, again.complete) == (4, 0, True)
    assert len(load(out)) == 4


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _runs_owned_by(tools: Any, owners: list[int]) -> dict[str, list[int]]:
    """Run id -> recorded processes, for the runs these processes own right now."""
    states = (tools.state_of(p.stem) for p in Path("/run/simnet").glob("*.json"))
    return {
        str(s["id"]): list(s.get("pids", [])) for s in states if s and s.get("owner_pid") in owners
    }


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_sweep_resumes_to_exactly_one_row_per_planned_run(
    tmp_path: Path, tools: Any, sig: signal.Signals
) -> None:
    # a second of audio per call keeps the sweep busy after its first row: the kill lands mid-way
    sweep_file = _sweep_file(
        tmp_path, repeat=3, extra=", call.media.audio: true, call.duration_s: 1"
    )
    planned = plan_sweep(load_sweep(sweep_file))
    out = tmp_path / "results"
    argv = [sys.executable, "-c", RUN_SWEEP, str(sweep_file), str(out), "2"]
    proc = subprocess.Popen(
        [*argv, "fresh"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=tools.cli_env,
        start_new_session=True,  # the signal reaches the sweep's parent process only
    )
    try:
        tools.wait_for(
            lambda: list(out.glob("*.parquet")) or proc.poll() is not None,
            "the sweep's first row",
            deadline_s=120,
        )
        if proc.poll() is not None:
            pytest.fail("the sweep ended before it was killed:\n" + "".join(proc.communicate()))
        workers = _children(proc.pid)
        runs = _runs_owned_by(tools, workers)
        assert workers and runs
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if sig == signal.SIGTERM:
        # the sweep itself stopped its workers and removed their networks before exiting
        assert proc.returncode == 143, stderr
        assert "terminated" in stderr
        assert not [w for w in workers if tools.process_alive(w)]
        left = {r: tools.leftovers(r, p) for r, p in runs.items()}
        assert not any(left.values()), left
    else:
        # the workers die with their parent (PR_SET_PDEATHSIG); `simnet cleanup` removes the rest
        assert proc.returncode == -signal.SIGKILL
        tools.wait_for(
            lambda: not [w for w in workers if tools.process_alive(w)], "the workers to die", 10
        )
        done = tools.run_cli("cleanup")
        assert done.returncode == 0, done.output
    _assert_no_leftovers(tools, runs)

    stored = load(out)
    assert 1 <= len(stored) < len(planned), "the kill did not land mid-way"
    assert len(set(_keys(stored))) == len(stored)

    resumed = subprocess.run(
        [*argv, "resume"], capture_output=True, text=True, env=tools.cli_env, timeout=180
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(stored)} already stored, 0 missing" in resumed.stdout
    frame = load(out)
    assert len(frame) == len(planned)
    assert _keys(frame) == sorted(p.key for p in planned)
    _assert_no_leftovers(tools, set(frame["run_id"]))

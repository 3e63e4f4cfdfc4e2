"""The CLI run on bad input: any run it starts is stopped; one clear error, nothing left behind."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path


def new_namespaces(tools, before: set[str]) -> set[str]:
    """Namespaces that appeared since `before` and belong to no run simnet knows of.

    Other simnet runs on this machine may come and go meanwhile, and one may be killed on
    purpose (`test_teardown`'s SIGKILL, whose state stays until its `simnet cleanup`; CI17
    counted it as this test's leftover while its owner was dead). A run writes its state file
    before it creates a namespace and removes it after, and a killed run keeps it for `simnet
    cleanup`: so list, then read the states, then list again, and only a namespace present in
    both lists whose run has no state file is a leftover (this test's own runs are cleaned by
    `run_guarded`, which checks them by id).
    """
    listed = set(tools.namespaces())
    known = {
        str(s["id"])
        for s in map(tools.state_of, (p.stem for p in Path("/run/simnet").glob("*.json")))
        if s
    }
    still = listed & set(tools.namespaces())
    return {n for n in still - before if n.removeprefix("sn-").split("-", 1)[0] not in known}


def run_guarded(tools, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the CLI; if it starts a run (a state file names its pid), stop it once it holds.

    Returns the finished process and the runs it started (none, when the input was rejected).
    Whatever such a run leaves is removed afterwards, so a failing case cannot leak namespaces.
    """
    proc = subprocess.Popen(
        [*tools.simnet, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=tools.cli_env,
        start_new_session=True,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda s=stream, sink=sink: sink.extend(s), daemon=True)
        for stream, sink in ((proc.stdout, out), (proc.stderr, err))
    ]
    for reader in readers:
        reader.start()
    started: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            for path in Path("/run/simnet").glob("*.json"):
                state = tools.state_of(path.stem)
                if state and state.get("owner_pid") == proc.pid and path.stem not in started:
                    started.append(path.stem)
            # stop an accepted `up` only once it holds: not in the middle of its build
            if any(f"holding run {run_id}" in "".join(out) for run_id in started):
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.01)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=5)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, "".join(out), "".join(err))
        return done, started
    finally:
        for run_id in started:
            leftover = tools.leftovers(run_id)
            for name in leftover.get("namespaces", []):
                subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
            if "state_file" in leftover:
                Path(leftover["state_file"]).unlink(missing_ok=True)


def assert_one_clear_error(done: subprocess.CompletedProcess[str], names: list[str]) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output, output
    assert not any(ord(c) < 32 and c not in "\n\t" for c in output), output  # no raw escapes
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, done.stderr
    for name in names:
        assert name in done.stderr, f"{name!r} not in {done.stderr!r}"
    return error_lines[0]

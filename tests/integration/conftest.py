"""Shared helpers for the integration tests: scenario files, the CLI, held networks, leftovers.

Everything here observes the kernel and /run directly (`ip netns list`, `ip -o link`, /proc,
/run/simnet) rather than through simnet's own bookkeeping, so that the tests measure what a run
really leaves behind. Other simnet runs (another engineer, CI) may be alive on the same machine:
helpers only ever look at, signal or remove what a test itself started, by run id and pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

STATE_DIR = Path("/run/simnet")
NETNS_DIR = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
READY_DEADLINE_S = 30.0  # generous: a loaded CI machine may take seconds to build a network
EXIT_DEADLINE_S = 20.0

_simnet_script = Path(sys.executable).with_name("simnet")
SIMNET = [str(_simnet_script)] if _simnet_script.exists() else [sys.executable, "-m", "simnet.cli"]
CLI_ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "NO_COLOR": "1"}
CLI_ENV.pop("SIMNET_DEBUG", None)  # the CLI must hide tracebacks, as users see it

_T = TypeVar("_T")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root to create network namespaces")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


# --- observation ----------------------------------------------------------------------------


def namespaces(prefix: str = "sn-") -> list[str]:
    """Names from `ip netns list` that start with `prefix`."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    # each line is "name" or "name (id: N)"
    names = (line.split()[0] for line in out.stdout.splitlines() if line.strip())
    return sorted(n for n in names if n.startswith(prefix))


def root_links() -> set[tuple[str, str]]:
    """(ifindex, ifname) of every link in the root namespace, from `ip -o link`."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    links = set()
    for line in out.stdout.splitlines():
        index, name = line.split(":", 2)[:2]
        links.add((index.strip(), name.strip().split("@")[0]))
    return links


def root_state() -> dict[str, str]:
    """The root namespace's addresses, routes (every table) and policy rules of both families
    and its nftables tables: what no run may change (a run works inside its own namespaces)."""
    commands = {
        f"{what} -{family}": ["ip", f"-{family}", *args]
        for family in ("4", "6")
        for what, args in (
            ("addr", ["addr", "show"]),
            ("route", ["route", "show", "table", "all"]),
            ("rule", ["rule", "show"]),
        )
    }
    commands["nft tables"] = ["nft", "list", "tables"]
    return {
        name: subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        for name, argv in commands.items()
    }


def run_processes(run_id: str) -> list[str]:
    """Command lines of live processes that name run `run_id`'s work directory (tayga, unbound
    and coturn are started with their configuration in /run/simnet/<run id>.d)."""
    mark = f"{STATE_DIR}/{run_id}.d/".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        if mark in argv and process_alive(int(proc.name)):
            found.append(argv.replace(b"\0", b" ").decode(errors="replace").strip())
    return found


def process_alive(pid: int) -> bool:
    """A live, non-zombie process with this pid exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def state_of(run_id: str) -> dict[str, Any] | None:
    try:
        return json.loads((STATE_DIR / f"{run_id}.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def leftovers(run_id: str, pids: list[int] | tuple[int, ...] = ()) -> dict[str, Any]:
    """Whatever run `run_id` still has: namespaces, state file, /etc/netns entries (a
    namespace's resolv.conf), live processes (empty: none)."""
    found: dict[str, Any] = {}
    if names := namespaces(f"sn-{run_id}-"):
        found["namespaces"] = names
    if entries := sorted(p.name for p in ETC_NETNS.glob(f"sn-{run_id}-*")):
        found["etc_netns"] = entries
    if (STATE_DIR / f"{run_id}.json").exists():
        found["state_file"] = str(STATE_DIR / f"{run_id}.json")
    if alive := [p for p in pids if process_alive(p)]:
        found["processes"] = alive
    return found


def wait_for(
    condition: Callable[[], _T],
    what: str,
    deadline_s: float = READY_DEADLINE_S,
    interval_s: float = 0.02,
) -> _T:
    """Poll `condition` until it returns something truthy; fail with `what` after the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {deadline_s:g} s waiting for {what}")
        time.sleep(interval_s)


# --- the CLI --------------------------------------------------------------------------------


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args: str, timeout: float = 60.0) -> CliResult:
    done = subprocess.run(
        [*SIMNET, *args], capture_output=True, text=True, timeout=timeout, env=CLI_ENV
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def _sigint_default() -> None:
    # a shell's background job starts with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt; a user's terminal Ctrl-C always arrives, so restore the default
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class HeldNetwork:
    """A `simnet up` subprocess and what it holds."""

    proc: subprocess.Popen[str]
    scenario: Path
    run_id: str = ""
    nodes: dict[str, str] = field(default_factory=dict)  # node -> namespace
    pids: list[int] = field(default_factory=list)  # processes the run recorded as its own
    _out: list[str] = field(default_factory=list)
    _err: list[str] = field(default_factory=list)
    _readers: list[threading.Thread] = field(default_factory=list)

    def start_readers(self) -> None:
        for stream, sink in ((self.proc.stdout, self._out), (self.proc.stderr, self._err)):
            thread = threading.Thread(target=_drain, args=(stream, sink), daemon=True)
            thread.start()
            self._readers.append(thread)

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def _own_state(self) -> dict[str, Any] | None:
        for path in STATE_DIR.glob("*.json") if STATE_DIR.exists() else []:
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if state.get("owner_pid") == self.proc.pid:
                return state
        return None

    def wait_ready(self) -> HeldNetwork:
        """Wait until the run's state file names it and all its namespaces exist and are built."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"simnet up exited with {self.proc.returncode} before holding:\n"
                    f"{self.stdout}\n{self.stderr}"
                )
            state = self._own_state()
            if state is None or not state.get("nodes"):
                return False
            self.run_id = str(state["id"])
            self.nodes = dict(state["nodes"])
            self.pids = list(state.get("pids", []))
            if not all((NETNS_DIR / ns).exists() for ns in self.nodes.values()):
                return False
            # the namespaces exist before they are configured; this line follows the build
            return f"holding run {self.run_id}" in self.stdout

        wait_for(ready, f"simnet up {self.scenario.name} to hold its network")
        return self

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, deadline_s: float = EXIT_DEADLINE_S) -> int:
        try:
            code = self.proc.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"simnet up (pid {self.proc.pid}) did not exit within {deadline_s:g} s")
        for thread in self._readers:
            thread.join(timeout=5)
        return code

    def force_stop(self) -> None:
        """Safety net for a failed test: stop the process and remove what it left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=EXIT_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.pids:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.run_id:
            for name in namespaces(f"sn-{self.run_id}-"):
                subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
            (STATE_DIR / f"{self.run_id}.json").unlink(missing_ok=True)


def _drain(stream: Any, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def scenario_file(tmp_path: Path) -> Callable[..., Path]:
    """Write scenario YAML text to a file in tmp_path; returns its path."""

    def write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def simnet_up() -> Iterator[Callable[..., HeldNetwork]]:
    """Start `simnet up SCENARIO` subprocesses; whatever a test leaves running is stopped."""
    started: list[HeldNetwork] = []

    def start(scenario: Path, *args: str) -> HeldNetwork:
        proc = subprocess.Popen(
            [*SIMNET, "up", str(scenario), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=CLI_ENV,
            start_new_session=True,  # signals meant for pytest do not reach it, and vice versa
            preexec_fn=_sigint_default,
        )
        held = HeldNetwork(proc, scenario)
        held.start_readers()
        started.append(held)
        return held

    yield start
    for held in started:
        held.force_stop()


@pytest.fixture
def background() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start helper processes (e.g. `simnet exec web -- sleep`); killed at the end if alive."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*argv: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=CLI_ENV
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


class Tools:
    """The helpers above, handed to tests as the `tools` fixture."""

    namespaces = staticmethod(namespaces)
    root_links = staticmethod(root_links)
    root_state = staticmethod(root_state)
    run_processes = staticmethod(run_processes)
    process_alive = staticmethod(process_alive)
    state_of = staticmethod(state_of)
    leftovers = staticmethod(leftovers)
    wait_for = staticmethod(wait_for)
    run_cli = staticmethod(run_cli)
    simnet = tuple(SIMNET)  # argv prefix that runs the CLI
    cli_env = CLI_ENV


@pytest.fixture
def tools() -> type[Tools]:
    return Tools


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, subprocess.Popen[bytes]]]]:
    """A scheduler and two workers (no nanny: a killed worker stays dead), one thread each:
    the scheduler's address and the processes by name."""
    from tests.integration.dask_cluster import local_cluster  # distributed loads only if used

    with local_cluster(tmp_path) as found:
        yield found

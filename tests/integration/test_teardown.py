"""A run leaves nothing behind: no namespace, state file, process or root-namespace link.

Why: simnet creates kernel objects that outlive a crashed process. Every way a run can end (the
block ends, an exception, Ctrl-C, SIGTERM, `simnet down`) must remove all of it, a run killed
with SIGKILL must be cleanable by `simnet cleanup`, and cleanup must never touch a live run, or two
users (or two CI jobs) on one machine would break each other's networks.

Every check here is made by observing the kernel (`ip netns list`, `ip -o link`, /proc) and
/run/simnet, not simnet's own bookkeeping.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from simnet.net.builder import emulated_network
from simnet.net.plan import NetworkPlan, plan_network
from simnet.net.process import spawn
from simnet.scenario import load_scenario
from simnet.signals import Terminated

SCENARIO = """\
nats:
  home: {preset: port-restricted-cone}
  corp: {preset: full-cone, firewall: {block_udp: true, allow: ["tcp/443"]}}
hosts:
  alice: {behind: home}
  bob: {behind: corp}
  web: {behind: internet}
"""
NODES = {"internet", "home", "corp", "alice", "bob", "web"}


def _plan(path: Path) -> NetworkPlan:
    return plan_network(load_scenario(path))


def _in_namespace(pid: int, ns: str) -> bool:
    """Process `pid` runs in namespace `ns` (compared by inode, like `ip netns identify`)."""
    try:
        mine = os.stat(f"/proc/{pid}/ns/net")
        target = os.stat(f"/run/netns/{ns}")
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (target.st_dev, target.st_ino)


def _sleep_in(background, tools, held, node: str) -> subprocess.Popen[bytes]:
    """A process started in `node` with `simnet exec`, i.e. one the run does not know about."""
    proc = background(*tools.simnet, "exec", "--run", held.run_id, node, "--", "sleep", "300")
    tools.wait_for(
        lambda: (
            _in_namespace(proc.pid, held.nodes[node])
            and Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep"
        ),
        f"`simnet exec {node} -- sleep` to start",
    )
    return proc


# --- the library: emulated_network() --------------------------------------------------------


@pytest.mark.integration
def test_block_that_ends_normally_leaves_nothing(scenario_file, background, tools) -> None:
    plan = _plan(scenario_file(SCENARIO))
    links_before = tools.root_links()

    with emulated_network(plan, label="test") as network:
        run_id = network.run.id
        expected = sorted(network.ns(node) for node in NODES)
        assert tools.namespaces(f"sn-{run_id}-") == expected
        assert tools.state_of(run_id) is not None
        # one process the run started and owns, one started behind its back in its namespace
        owned = spawn(network.run, network.ns("web"), ["sleep", "300"])
        stray = background("ip", "netns", "exec", network.ns("bob"), "sleep", "300")
        tools.wait_for(lambda: _in_namespace(stray.pid, network.ns("bob")), "stray sleep")
        assert tools.process_alive(owned.pid) and tools.process_alive(stray.pid)
        assert tools.root_links() == links_before

    assert tools.leftovers(run_id, [owned.pid, stray.pid]) == {}
    assert tools.root_links() == links_before


@pytest.mark.integration
@pytest.mark.parametrize("how", ["exception", "sigterm"])
def test_block_left_by_exception_or_sigterm_leaves_nothing(how: str, scenario_file, tools) -> None:
    plan = _plan(scenario_file(SCENARIO))
    links_before = tools.root_links()
    handler_before = signal.getsignal(signal.SIGTERM)
    expected_error = RuntimeError if how == "exception" else Terminated

    with pytest.raises(expected_error), emulated_network(plan) as network:
        run_id = network.run.id
        owned = spawn(network.run, network.ns("alice"), ["sleep", "300"])
        assert len(tools.namespaces(f"sn-{run_id}-")) == len(NODES)
        if how == "exception":
            raise RuntimeError("a test failed inside the block")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # interrupted by Terminated; reaching the end fails pytest.raises

    assert tools.leftovers(run_id, [owned.pid]) == {}
    assert tools.root_links() == links_before
    assert signal.getsignal(signal.SIGTERM) == handler_before


# --- the CLI: simnet up / down / cleanup / exec ---------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sig", "exit_code"), [(signal.SIGTERM, 128 + 15), (signal.SIGINT, 128 + 2)]
)
def test_simnet_up_stopped_by_signal_leaves_nothing(
    sig: signal.Signals, exit_code: int, scenario_file, simnet_up, background, tools
) -> None:
    links_before = tools.root_links()
    held = simnet_up(scenario_file(SCENARIO)).wait_ready()
    assert set(held.nodes) == NODES
    assert tools.namespaces(f"sn-{held.run_id}-") == sorted(held.nodes.values())
    assert tools.root_links() == links_before
    sleeper = _sleep_in(background, tools, held, "web")

    held.signal(sig)

    assert held.wait_exit() == exit_code, held.stderr
    assert "Traceback" not in held.stderr
    assert tools.leftovers(held.run_id, [*held.pids, held.proc.pid, sleeper.pid]) == {}
    assert tools.root_links() == links_before
    if sig is signal.SIGTERM:
        assert "everything this run created was removed" in held.stderr


@pytest.mark.integration
def test_simnet_up_says_so_when_ctrl_c_stops_it(scenario_file, simnet_up, tools) -> None:
    held = simnet_up(scenario_file(SCENARIO)).wait_ready()

    held.signal(signal.SIGINT)

    assert held.wait_exit() == 128 + signal.SIGINT
    assert tools.leftovers(held.run_id, held.pids) == {}
    assert "everything this run created was removed" in held.stderr


@pytest.mark.integration
def test_simnet_cleanup_removes_what_a_killed_run_left(
    scenario_file, simnet_up, background, tools
) -> None:
    links_before = tools.root_links()
    held = simnet_up(scenario_file(SCENARIO)).wait_ready()
    sleeper = _sleep_in(background, tools, held, "alice")

    held.signal(signal.SIGKILL)
    assert held.wait_exit() == -signal.SIGKILL

    # SIGKILL gives no chance to tear down: everything is still there
    assert tools.namespaces(f"sn-{held.run_id}-") == sorted(held.nodes.values())
    assert tools.state_of(held.run_id) is not None
    assert tools.process_alive(sleeper.pid)

    done = tools.run_cli("cleanup")

    assert done.returncode == 0, done.output
    assert "Traceback" not in done.output
    assert tools.leftovers(held.run_id, [*held.pids, sleeper.pid]) == {}
    assert tools.root_links() == links_before


@pytest.mark.integration
def test_concurrent_runs_do_not_collide_and_cleanup_spares_live_runs(
    scenario_file, simnet_up, tools
) -> None:
    path = scenario_file(SCENARIO)
    web = str(_plan(path).nodes["web"].address)
    links_before = tools.root_links()

    first, second = simnet_up(path), simnet_up(path)  # started together, built concurrently
    first.wait_ready()
    second.wait_ready()

    assert first.run_id != second.run_id
    for held in (first, second):
        assert set(held.nodes) == NODES
        assert tools.namespaces(f"sn-{held.run_id}-") == sorted(held.nodes.values())
    assert not set(first.nodes.values()) & set(second.nodes.values())
    assert tools.root_links() == links_before

    def both_work() -> None:
        for held in (first, second):
            ping = tools.run_cli(
                "exec", "--run", held.run_id, "alice", "--", "ping", "-c1", "-W2", web
            )
            assert ping.returncode == 0, ping.output
            assert held.proc.poll() is None

    both_work()
    ambiguous = tools.run_cli("exec", "alice", "--", "true")  # two (or more) runs are up
    assert ambiguous.returncode != 0
    assert "several networks are up" in ambiguous.stderr

    done = tools.run_cli("cleanup")

    assert done.returncode == 0, done.output
    assert first.run_id in done.stdout and second.run_id in done.stdout  # "left live runs ..."
    for held in (first, second):
        assert tools.namespaces(f"sn-{held.run_id}-") == sorted(held.nodes.values())
        assert tools.state_of(held.run_id) is not None
    both_work()

    # `simnet down` without an id would also stop other people's held networks on this machine
    for held in (first, second):
        down = tools.run_cli("down", held.run_id)
        assert down.returncode == 0, down.output
        assert held.run_id in down.stdout
    for held in (first, second):
        assert held.wait_exit() == 128 + signal.SIGTERM
        assert tools.leftovers(held.run_id, [*held.pids, held.proc.pid]) == {}
    assert tools.root_links() == links_before


@pytest.mark.integration
def test_simnet_exec_runs_a_command_inside_a_host(scenario_file, simnet_up, tools) -> None:
    path = scenario_file(SCENARIO)
    web = str(_plan(path).nodes["web"].address)
    held = simnet_up(path).wait_ready()

    ping = tools.run_cli("exec", "--run", held.run_id, "alice", "--", "ping", "-c1", "-W2", web)
    where = tools.run_cli("exec", "--run", held.run_id, "alice", "--", "ip", "-o", "-4", "addr")

    assert ping.returncode == 0, ping.output
    assert "1 received" in ping.stdout
    alice = str(_plan(path).nodes["alice"].address)
    assert f"inet {alice}/" in where.stdout  # it really ran in alice's namespace

    held.signal(signal.SIGTERM)
    held.wait_exit()
    assert tools.leftovers(held.run_id, held.pids) == {}


@pytest.mark.integration
def test_simnet_exec_unknown_host_is_a_one_line_error(scenario_file, simnet_up, tools) -> None:
    held = simnet_up(scenario_file(SCENARIO)).wait_ready()

    done = tools.run_cli("exec", "--run", held.run_id, "mallory", "--", "true")

    assert done.returncode != 0
    assert "Traceback" not in done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error:") and "mallory" in lines[0]
    assert held.proc.poll() is None  # the held network is unaffected

    held.signal(signal.SIGTERM)
    held.wait_exit()
    assert tools.leftovers(held.run_id, held.pids) == {}

"""`simnet probe-link` on real namespaces: a host behind a NAT and a host on the internet.

Why: probe-link is how link impairments (delay, loss, rate) will be proven, so on an unimpaired
network it must read what the kernel gives (no loss, sub-millisecond delays, real throughput),
whichever way round the hosts are named: the host behind the port-restricted cone cannot serve,
so the public one must, with every figure still given per direction A→B / B→A. When the serving
host is forced behind the NAT, the probes must be shown lost on the way in, not hang; a pair that
cannot be measured at all must be refused before anything is built. Each run must leave nothing:
no namespace, no state file, no iperf3.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.solo import SOLO

pytestmark = [pytest.mark.integration, *SOLO]

SCENARIO = """\
name: probe-link
nats:
  home: {preset: port-restricted-cone}
  carrier: {preset: symmetric}
hosts:
  alice: {behind: home}
  bob: {behind: internet}
  carl: {behind: carrier}
"""
FAST = ("--json", "--count", "50", "--interval-ms", "5", "--duration", "1")
REQUIRED_KEYS = {
    "rtt_ms_median", "rtt_ms_p95", "loss_pct", "loss_pct_ab", "loss_pct_ba",
    "one_way_ms_ab_median", "one_way_ms_ba_median", "throughput_mbps", "udp_throughput_mbps",
    "udp_loss_pct",
}  # fmt: skip


def iperf3_of_run(run_id: str) -> list[int]:
    """Live iperf3 processes that belong to run `run_id` (the server logs into the run's
    directory; clients are waited for). Matched by run id, not by name alone, because other
    engineers' runs on this machine may use iperf3 at the same time."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if comm == "iperf3" and f"/run/simnet/{run_id}." in cmdline:
            pids.append(int(entry))
    return pids


def assert_nothing_left(tools: Any, run_id: str) -> None:
    assert tools.leftovers(run_id) == {}
    assert iperf3_of_run(run_id) == [], "an iperf3 process outlived the run"


@pytest.fixture
def scenario(scenario_file: Callable[..., Path]) -> Path:
    return scenario_file(SCENARIO)


def probe(tools: Any, *args: str) -> tuple[int, dict[str, Any]]:
    """Run probe-link with --json; check it left nothing behind; return its exit code and JSON."""
    result = tools.run_cli("probe-link", *args)
    assert result.stdout.strip(), result.output
    data = json.loads(result.stdout)
    assert_nothing_left(tools, data["run_id"])
    return result.returncode, data


@pytest.mark.parametrize(("a", "b"), [("alice", "bob"), ("bob", "alice")])
def test_nat_host_and_public_host(tools: Any, scenario: Path, a: str, b: str) -> None:
    code, data = probe(tools, str(scenario), a, b, *FAST)
    assert code == 0, data
    assert set(data) >= REQUIRED_KEYS
    assert data["server"] == "bob"  # the one alice can reach, whichever is A
    assert data["host_a"] == a and data["host_b"] == b
    assert data["throughput_direction"] == f"{a}->{b}"
    assert data["probes"] == 50
    for key in ("loss_pct", "loss_pct_ab", "loss_pct_ba"):
        assert data[key] <= 2.0, (key, data)
    assert 0 < data["rtt_ms_median"] < 1.0
    assert data["rtt_ms_min"] <= data["rtt_ms_median"] <= data["rtt_ms_p95"] <= data["rtt_ms_max"]
    assert 0 < data["one_way_ms_ab_median"] < 1.0
    assert 0 < data["one_way_ms_ba_median"] < 1.0
    assert data["throughput_mbps"] > 0
    assert data["udp_throughput_mbps"] > 0
    assert 0 <= data["udp_loss_pct"] <= 5  # 4 MB buffers: ~0 here, some slack for busy machines
    assert data["errors"] == []
    if a == "bob":
        assert any("alice initiates" in note for note in data["notes"])


def test_table_output(tools: Any, scenario: Path) -> None:
    result = tools.run_cli(
        "probe-link", str(scenario), "alice", "bob", "--count", "20", "--duration", "1"
    )
    assert result.returncode == 0, result.output
    for text in ("alice -> bob", "bob -> alice", "round trip", "delay median ms", "loss %"):
        assert text in result.stdout
    assert "TCP Mbit/s" in result.stdout and "UDP Mbit/s at 100M" in result.stdout
    run_id = result.stdout.split("(run ", 1)[1].split(")", 1)[0]
    assert_nothing_left(tools, run_id)


def test_server_forced_behind_the_nat_shows_probes_lost_inbound(tools: Any, scenario: Path) -> None:
    code, data = probe(
        tools, str(scenario), "bob", "alice", "--server-host", "alice", *FAST[:5], "--duration", "0"
    )
    assert code == 1
    assert data["server"] == "alice"
    assert data["loss_pct_ab"] == 100.0  # bob -> alice never arrives
    assert data["loss_pct_ba"] is None  # nothing to answer, so nothing known
    assert data["throughput_mbps"] is None
    assert any("expect the probes to be lost" in note for note in data["notes"])


def test_two_hidden_hosts_are_refused_before_building(tools: Any) -> None:
    """Run unprivileged: the refusal (exit 2) must come before `require_root` (exit 3), so
    nothing can have been built. Watching namespaces instead would race other runs."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir="/tmp") as file:
        file.write(SCENARIO)
        file.flush()
        os.chmod(file.name, 0o644)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        result = subprocess.run(
            [*nobody, *tools.simnet, "probe-link", file.name, "alice", "carl", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=tools.cli_env,
        )
        measurable = subprocess.run(
            [*nobody, *tools.simnet, "probe-link", file.name, "alice", "bob"],
            capture_output=True,
            text=True,
            timeout=60,
            env=tools.cli_env,
        )
    # the check itself needs no root: the measurable file gets as far as asking for it
    assert measurable.returncode == 2 and "needs root" in measurable.stderr, measurable.stderr
    assert result.returncode == 2, result.stderr
    assert "cannot be measured directly" in result.stderr
    assert "home" in result.stderr and "carrier" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


IMPAIRED = """\
name: probe-link-delays
nats:
  home: {preset: port-restricted-cone, link: {delay_ms: 5}}
hosts:
  alice: {behind: home, link: {delay_ms: 10, down: {delay_ms: 3}}}
  bob: {behind: internet, link: {delay_ms: 2, down: {delay_ms: 7}}}
"""
# What the delay lines may add at the median and how early they may release (the bounds of
# tests/integration/test_impairments.py: they come from the delay line's design)
LINE_MS, PATH_MS, EARLIEST_MS = 0.1, 0.05, 0.35


def test_delays_are_read_per_direction_with_kernel_stamps(
    tools: Any, scenario_file: Callable[..., Path]
) -> None:
    """alice -> bob crosses alice's up (10), home's up (5) and bob's down (7): 22 ms; back, bob's
    up (2), home's down (5) and alice's down (3): 10 ms. The last line of each way holds the
    packet in the receiver's own namespace, where a plain kernel receive stamp would come before
    the hold: the figures must still include it, and add up to the round trip."""
    code, data = probe(tools, str(scenario_file(IMPAIRED)), "alice", "bob", *FAST)
    assert code == 0, data
    # every delay line direction says how punctually it released the echo's 50 probes
    released = {(e["link"], e["direction"]): e["released"] for e in data["late_releases"]}
    assert released == {(n, d): 50 for n in ("alice", "bob", "home") for d in ("up", "down")}
    assert data["emulator_late"] == any(e["late"] for e in data["late_releases"])
    for key, want in (("one_way_ms_ab_median", 22), ("one_way_ms_ba_median", 10)):
        got = data[key]
        assert want - EARLIEST_MS <= got <= want + 3 * LINE_MS + PATH_MS, (key, got)
    # The round trip is each probe's forward + backward delay, the echo's own holding time left
    # out. Its median is not bounded by the sum of the two medians (each line's added delay is
    # skewed right: a median of 0, a tail of tenths of a millisecond, and the median of a sum of
    # six such lies above the sum of their medians: 32.96 ms measured once on a quiet machine).
    # It is bounded by the sum of the two p95s: at most ~5 % of probes exceed each, so at least
    # ~90 % have a round trip below the sum. An echo that counted its own scheduling, or a
    # round trip stamped apart from its two halves, breaks that bound.
    rtt = data["rtt_ms_median"]
    most = data["one_way_ms_ab_p95"] + data["one_way_ms_ba_p95"]
    assert 32 - 6 * EARLIEST_MS <= rtt <= most, (rtt, most)

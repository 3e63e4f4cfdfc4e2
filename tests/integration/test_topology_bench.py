"""The topology benchmark runs end to end, builds working networks and leaves nothing behind.

Why: the benchmark is only meaningful if both of its networks work and are the same network
(it checks that itself and exits non-zero otherwise), and it must never leak namespaces, since
it creates and deletes dozens of them. Timings are not asserted: they depend on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARK = ROOT / "benchmarks" / "topology.py"


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    # `ip netns list` prints "name" or "name (id: N)"
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.integration
def test_topology_benchmark_builds_working_networks_and_cleans_up() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--repeat", "2", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)

    expected = {
        "benchmark",
        "scenario",
        "nodes",
        "repeat",
        "settle_s",
        "prefixes",
        "script_commands",
        "verified",
        "equivalent",
        "simnet",
        "script",
        "ratio",
        "target_ratio",
        "target_met",
        "samples_ms",
        "operations_ms",
        "host",
    }
    assert expected <= set(result)
    assert result["repeat"] == 2
    assert sorted(result["nodes"]) == ["alice", "bob", "carrier", "home", "internet", "stun"]
    for method in ("simnet", "script"):
        assert set(result[method]) == {"build", "teardown", "total"}
        for phase in result[method].values():
            assert set(phase) == {"median_ms", "p10_ms", "p90_ms"}
            assert phase["p10_ms"] <= phase["median_ms"] <= phase["p90_ms"]
        assert len(result["samples_ms"][method]) == 2
    assert set(result["ratio"]) == {"build", "teardown", "total"}
    assert result["verified"] == {"simnet": True, "script": True}
    # where the time goes: every kind of kernel operation is accounted for, on both sides
    simnet_ops, script_ops = result["operations_ms"]["simnet"], result["operations_ms"]["script"]
    assert {"route add", "address add", "nftables ruleset load (libnftables)"} <= set(simnet_ops)
    assert any(op.startswith("netns create") for op in simnet_ops)
    assert {"netns-add", "veth-add", "addr-add", "route-add", "nft-load"} <= set(script_ops)
    assert all(ms >= 0 for op, ms in simnet_ops.items() if not op.startswith("("))
    assert result["equivalent"] is True

    prefixes = result["prefixes"]
    assert prefixes["simnet"].startswith("sn-") and prefixes["script"].startswith("snb-")
    leftovers = [name for name in _namespaces() if name.startswith(tuple(prefixes.values()))]
    assert leftovers == []

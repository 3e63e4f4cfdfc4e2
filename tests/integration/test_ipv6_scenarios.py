"""The shipped IPv6 scenarios as a user meets them: `verify-nat` proves each one's networks as
configured (a dual-stack home's IPv6 firewall, an IPv6-only carrier's NAT64), and a run with a
NAT64 and DNS64 leaves nothing behind, in the root namespace least of all.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import aiortc
import pytest

from simnet.results.store import load
from tests.integration.conftest import CLI_ENV, SIMNET

pytestmark = pytest.mark.integration
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _verdicts(tools: Any, name: str) -> list[dict[str, Any]]:
    done = tools.run_cli("verify-nat", str(SCENARIOS / f"{name}.yaml"), "--json", timeout=120)
    assert done.returncode == 0, done.output
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_verify_nat_proves_the_dual_stack_homes_ipv6_firewalls(tools: Any) -> None:
    verdicts = _verdicts(tools, "dual-stack")
    v6 = {v["nat"]: v for v in verdicts if v["family"] == "ipv6"}
    assert set(v6) == {"home-a", "home-b"}
    for verdict in v6.values():
        assert verdict["as_configured"], verdict
        assert (verdict["mapping"], verdict["translates"]) == ("none", False)
        assert verdict["filtering"] == "address-and-port-dependent"
    assert {v["nat"] for v in verdicts if v["family"] == "ipv4"} == {"home-a", "home-b"}


def test_verify_nat_proves_the_carriers_nat64_as_configured(tools: Any) -> None:
    verdicts = _verdicts(tools, "ipv6-only-carrier")
    nat64 = [v for v in verdicts if v["family"] == "nat64"]
    assert [v["nat"] for v in nat64] == ["carrier"]
    carrier = nat64[0]
    assert carrier["as_configured"] and carrier["translates"], carrier
    # a carrier's NAT64 by default: symmetric, random ports
    assert (carrier["mapping"], carrier["filtering"], carrier["port_allocation"]) == (
        "address-and-port-dependent",
        "address-and-port-dependent",
        "random",
    )
    assert all(v["as_configured"] for v in verdicts), verdicts
    assert not [v for v in verdicts if v["nat"] == "carrier" and v["family"] == "ipv4"]


def test_a_nat64_run_leaves_nothing_behind(tools: Any, tmp_path: Path) -> None:
    """The root namespace's addresses, routes, rules (IPv6 included) and nftables tables are
    as before; tayga, both unbounds, the namespaces' resolv.conf and the namespaces are gone."""
    before = tools.root_state()
    done = tools.run_cli(
        "run", str(SCENARIOS / "ipv6-only-carrier.yaml"), "--json", "--out", str(tmp_path),
        timeout=120,
    )  # fmt: skip
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and rows and rows[0]["via_nat64"], done.output
    run_id = rows[0]["run_id"]
    assert tools.leftovers(run_id) == {}  # namespaces, /etc/netns entries, state file
    assert tools.run_processes(run_id) == []  # tayga, unbound (zone and DNS64), coturn
    after = tools.root_state()
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}


def test_aiortc_following_rfc8445_takes_ipv6_on_the_dual_stack_homes(tmp_path: Path) -> None:
    """`SIMNET_AIORTC_ICE=rfc8445`: IPv6 hosts ranked first and a triggered check on a pair in
    progress, so the IPv6 pair, checked first and answered at once once both firewalls are
    open, is the one aioice nominates (as installed, the family is a race: see the settings
    guide). The rows say the agent's ICE mode in the peer's version."""
    env = {**CLI_ENV, "SIMNET_AIORTC_ICE": "rfc8445"}
    done = subprocess.run(
        [*SIMNET, "run", str(SCENARIOS / "dual-stack.yaml"), "--json", "--repeat", "3",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [(r["path"], r["ip_family"]) for r in rows] == [("direct", "ipv6")] * 3, rows
    stored = load(tmp_path)
    assert set(stored["offerer_peer_version"]) == {f"aiortc {aiortc.__version__} +rfc8445"}

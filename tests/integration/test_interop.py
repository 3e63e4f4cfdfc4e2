"""`simnet interop` on real namespaces: every ordered pair of two stacks (simnet's own peer and
pion's) on the four default networks connects as each network expects, exit 0, nothing left;
and pion's NAT matrix without TURN connects exactly where ICE theory says.

The stacks are the registry's first named kind and pion (the Go agent, built once here); the
browsers' cells cost a browser per host and are left to `simnet interop` itself.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from simnet.peer.pion import ensure_built
from simnet.peerkinds import NAMED_KINDS
from simnet.run.calls import run_scenario
from simnet.run.interop import DEFAULT_NETWORKS
from simnet.run.matrix import NEEDS_RELAY, expected_paths, matrix_cells, matrix_scenario
from simnet.scenario.model import CallSpec, Timeouts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]
PION = "pion"
STACKS = (NAMED_KINDS[0], PION)
#: what each default network's calls must show: (outcome, relay protocol)
EXPECTED = {
    "lan": ("direct", None),
    "prc-prc": ("direct", None),
    "sym-sym-turn-udp": ("relay", "udp"),
    "udp-blocked-turn-tls": ("relay", "tls"),
}


def test_interop_of_two_stacks_on_the_default_networks(tools: Any, tmp_path: Path) -> None:
    ensure_built()
    done = subprocess.run(
        [*tools.simnet, "interop", "--peers", ",".join(STACKS), "--json",
         "--out", str(tmp_path / "results")],
        capture_output=True, text=True, env=tools.cli_env, timeout=360, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["network"] for r in rows] == [n for n in DEFAULT_NETWORKS for _ in range(4)]
    pairs = [(r["offerer_peer"], r["answerer_peer"]) for r in rows]
    assert pairs == [(a, b) for _ in DEFAULT_NETWORKS for a in STACKS for b in STACKS]
    for row in rows:
        assert (row["outcome"], row["relay_protocol"]) == EXPECTED[row["network"]], row
        assert row["error"] is None, row
    assert len(list((tmp_path / "results").glob("interop-*.parquet"))) == len(rows)
    assert not tools.namespaces(f"sn-{rows[0]['run_id']}-")


def test_pion_matrix_without_turn_connects_exactly_where_ice_theory_says() -> None:
    ensure_built()
    # pion waits up to 1 s before nominating a peer-reflexive pair: 6 s leaves room on a
    # loaded machine, and bounds the three cells that must fail
    quick = CallSpec(timeouts=Timeouts(ice_s=6), data_bytes=100_000)
    rows = run_scenario(
        matrix_scenario(turn=False, peers=(PION, PION)), cells=matrix_cells(base=quick)
    )
    outcome = {(r["nat_a"], r["nat_b"]): str(r["path"]) if r["connected"] else "failed"
               for r in rows}  # fmt: skip
    errors = {(r["nat_a"], r["nat_b"]): (r["error"], r["error_detail"]) for r in rows}
    assert len(outcome) == 25
    wrong = {k: v for k, v in outcome.items() if v not in expected_paths(*k, turn=False)}
    assert not wrong, {k: errors[k] for k in wrong}
    assert {k for k, v in outcome.items() if v == "failed"} == NEEDS_RELAY

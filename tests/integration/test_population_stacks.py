"""A population whose users run different stacks, some of them behind a corporate proxy.

Why: a fleet is not one stack, and the proxy-only office is a class where the stack decides how
a call goes out: a browser through its proxy settings, simnet's aiortc agent through tunnels of
its own (`simnet.peer.aiortc.http_proxy`), both via the company's proxy (squid). The estimate a
team reads per pair of stacks is only as good as the calls behind it: each row must be the
drawn cell (class and stack on each side), made by that stack, on that network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simnet.population.mix import load_mix, sample
from simnet.results.stats import wilson_interval
from simnet.results.store import load
from tests.integration.conftest import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

# seed 6 draws each offerer cell once: (corp | public) x (aiortc | chromium), answerer aiortc
MIX = """\
name: tiny-fleet
sides:
  offerer:
    - class: corp
      share: 0.5
      why: "an office whose only way out is its HTTP proxy"
      nats: [{preset: symmetric, firewall: {proxy_only: proxy}}]
      servers: {proxy: {kind: http-proxy, connect_ports: [443]}}
    - {class: public, share: 0.5, nats: []}
  answerer: [{class: home, share: 1, nats: [{preset: port-restricted-cone}]}]
stacks:
  offerer: {aiortc: 0.5, chromium: 0.5}
  answerer: {aiortc: 1}
call:
  turn_transports: [tls, tcp]
  turn_ports: {tls: 443, tcp: 443}
  data_bytes: 10000
  duration_s: 0
"""
SEED, CALLS = 6, 4


def test_each_row_is_its_drawn_cell_and_the_proxy_class_goes_by_stack(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(MIX)
    out = tmp_path / "results"
    done = run_cli("population", str(path), "--calls", str(CALLS), "--seed", str(SEED),
                   "--json", "--out", str(out), timeout=380)  # fmt: skip
    assert done.returncode == 0, done.output
    printed = json.loads(done.stdout)
    records = load(out).to_dict("records")
    assert printed["calls"] == len(records) == CALLS
    cell = ("offerer_class", "offerer_peer", "answerer_class", "answerer_peer")
    drawn = sample(load_mix(path), CALLS, SEED)
    # the calls made are the calls drawn, class and stack on each side
    assert sorted(tuple(r[c] for c in cell) for r in records) == sorted(drawn)
    assert {d.offerer_stack for d in drawn} == {"aiortc", "chromium"}
    for row in records:
        assert row["population_stacks"] == (
            "offerers aiortc 50 %, chromium 50 %; answerers aiortc 100 %"
        )
        version = "Chromium " if row["offerer_peer"] == "chromium" else "aiortc "
        assert row["offerer_peer_version"].startswith(version), row  # made by the drawn stack
        if row["offerer_class"] == "public":
            assert row["connected"] and not row["error"], row
        else:
            # the office lets out only TCP to squid: a relay over TCP/TLS went through it
            assert row["connected"] and row["path"] == "relay", row
            assert row["relay_protocol"] in ("tcp", "tls"), row
            assert row["via_proxy"] is True and row["proxy_target"], row
    # the estimate per pair of stacks: the two offerer stacks' calls, shares and intervals
    pairs = {(p["offerer_stack"], p["answerer_stack"]): p for p in printed["stack_pairs"]}
    assert set(pairs) == {("aiortc", "aiortc"), ("chromium", "aiortc")}
    aiortc = pairs["aiortc", "aiortc"]
    assert aiortc["calls"] == 2 and aiortc["failed_share"] == 0.0
    expected = wilson_interval(0, 2)
    assert aiortc["failed_share_ci_low"] == pytest.approx(expected.low, abs=1e-4)
    assert aiortc["failed_share_ci_high"] == pytest.approx(expected.high, abs=1e-4)
    assert pairs["chromium", "aiortc"]["failed_share"] == 0.0


def test_a_stack_this_machine_cannot_run_is_one_error_before_any_call(tmp_path: Path) -> None:
    """The mix names a stack by a name the registry lacks: one error naming the file and the
    field, exit 2, nothing built."""
    path = tmp_path / "fleet.yaml"
    path.write_text(MIX.replace("chromium: 0.5", "safari: 0.5"))
    done = run_cli("population", str(path), "--calls", "2", "--out", str(tmp_path / "r"))
    assert done.returncode == 2, done.output
    assert f"{path}: invalid mix" in done.output and "stacks.offerer.safari" in done.output
    assert "Traceback" not in done.output and not (tmp_path / "r").exists()


def test_on_a_cluster_each_cell_runs_its_drawn_stacks(
    tmp_path: Path,
    cluster: tuple[str, dict[str, Any]],
) -> None:
    """With `--cluster` a cell's batch carries its scenario, which names its two stacks: the
    workers make the drawn calls, stack for stack, as the local run does."""
    path = tmp_path / "fleet.yaml"
    path.write_text(MIX)
    out = tmp_path / "results"
    done = run_cli("population", str(path), "--calls", str(CALLS), "--seed", str(SEED),
                   "--json", "--cluster", cluster[0], "--out", str(out), timeout=380)  # fmt: skip
    assert done.returncode == 0, done.output
    records = load(out).to_dict("records")
    cell = ("offerer_class", "offerer_peer", "answerer_class", "answerer_peer")
    drawn = sample(load_mix(path), CALLS, SEED)
    assert sorted(tuple(r[c] for c in cell) for r in records) == sorted(drawn)
    for row in records:
        if row["offerer_class"] == "corp":
            assert row["error"] is None and row["via_proxy"] is True, row
    assert len(json.loads(done.stdout)["stack_pairs"]) == 2

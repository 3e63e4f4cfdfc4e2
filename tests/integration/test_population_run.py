"""`simnet population` end to end: calls drawn from the shipped field mix, made, estimated.

Why: the estimate is only as good as its calls: each must be a real call between networks of
the classes drawn for it, stored with those classes, and the printed estimate must be the one
its stored rows give.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simnet.population.estimate import estimate
from simnet.population.mix import load_mix, sample
from simnet.results.store import load
from tests.integration.conftest import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FIELD = Path(__file__).resolve().parents[2] / "scenarios" / "mixes" / "field.yaml"
CALLS = 6


def test_a_small_population_of_the_field_mix(tmp_path: Path) -> None:
    """The field mix's networks, every side aiortc (`--peers` replaces the mix's stacks)."""
    out = tmp_path / "results"
    done = run_cli("population", str(FIELD), "--calls", str(CALLS), "--seed", "3", "--json",
                   "--peers", "aiortc", "--out", str(out), timeout=280)  # fmt: skip
    assert done.returncode == 0, done.output
    printed = json.loads(done.stdout)
    for key in ("calls", "direct_share", "relay_share", "failed_share", "relayed_bytes_share",
                "setup_ms_p50", "setup_ms_p95"):  # fmt: skip
        assert key in printed
    for outcome in ("direct", "relay", "failed"):
        assert printed[f"{outcome}_share_ci_low"] <= printed[f"{outcome}_share"]
        assert printed[f"{outcome}_share"] <= printed[f"{outcome}_share_ci_high"]
    rows = load(out)
    assert printed["calls"] == len(rows) == CALLS
    mix = load_mix(FIELD, ("aiortc", "aiortc"))
    drawn = sorted((d.offerer_class, d.answerer_class) for d in sample(mix, CALLS, 3))
    stored = sorted(zip(rows["offerer_class"], rows["answerer_class"], strict=True))
    assert stored == drawn  # the calls made are the calls drawn, class for class
    assert estimate(rows.to_dict("records"), mix).model_dump() == printed
    # ICE theory per drawn pair: a symmetric NAT facing a symmetric or port-restricted one
    # (a home-cone router; a CGN, port-restricted in effect) cannot punch through
    restricted = {"home-symmetric", "home-cone", "mobile-cgn"}
    for row in rows.to_dict("records"):
        pair = (row["offerer_class"], row["answerer_class"])
        if "home-symmetric" in pair and set(pair) <= restricted:
            assert row["path"] != "direct", row
    # the headline's stack, and what the aiortc agent saw of its checks: a call that went
    # direct had its direct pair pass; every relayed call says whether one passed too
    assert printed["stacks"] == ["aiortc"]
    records = rows.to_dict("records")
    for row in records:
        if row["connected"]:
            assert isinstance(row["direct_pair_succeeded"], bool), row
        if row["connected"] and row["path"] == "direct":
            assert row["direct_pair_succeeded"] is True, row
    relayed = [r for r in records if r["connected"] and not r["error"] and r["path"] == "relay"]
    assert printed["relayed_checks_known"] == len(relayed)
    assert printed["relayed_direct_also_succeeded"] == sum(
        r["direct_pair_succeeded"] for r in relayed
    )


def test_a_population_with_chromium_peers_runs_the_drawn_calls_in_the_browser(
    tmp_path: Path,
) -> None:
    """The mix says where users sit, `--peers` what they run: here Chromium on both sides.
    Seed 4 draws three home-cone / home-cone calls: two port-restricted routers, which
    Chromium always punches through (its controlling agent nominates only after checking;
    aiortc's aggressive nomination sometimes settles on a relay there, see docs/limits.md), so every
    call is direct; one network and two warm browsers for all three."""
    out = tmp_path / "results"
    done = run_cli("population", str(FIELD), "--calls", "3", "--seed", "4", "--json",
                   "--peers", "chromium", "--out", str(out), timeout=280)  # fmt: skip
    assert done.returncode == 0, done.output
    rows = load(out).to_dict("records")
    assert len(rows) == 3
    for row in rows:
        assert (row["offerer_class"], row["answerer_class"]) == ("home-cone", "home-cone")
        assert (row["offerer_peer"], row["answerer_peer"]) == ("chromium", "chromium"), row
        assert row["answerer_peer_version"].startswith("Chromium "), row
        assert row["connected"] and row["path"] == "direct", row
        # the page does not report its checks: no race to tell of
        assert row.get("direct_pair_succeeded") is None, row
    printed = json.loads(done.stdout)
    assert printed["direct_share"] == 1.0
    assert printed["stacks"] == ["chromium"] and printed["relayed_checks_known"] == 0


def test_a_mix_whose_shares_do_not_add_up_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text("sides:\n  offerer: [{class: a, share: 0.6}, {class: b, share: 0.3}]\n")
    done = run_cli("population", str(path))
    assert done.returncode == 2, done.output
    assert "sum to 0.9, not 1" in done.output and "Traceback" not in done.output


def test_an_unknown_peer_kind_is_one_clear_error() -> None:
    done = run_cli("population", str(FIELD), "--peers", "safari")
    assert done.returncode == 2, done.output
    assert "--peers" in done.output and "aiortc, chromium" in done.output
    assert "Traceback" not in done.output

"""`simnet run` and `simnet matrix` on real namespaces, coturn and aiortc peers.

Expectations are data (the matrix table in simnet.run.matrix); one test body checks every cell.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simnet.net.plan import plan_network
from simnet.results import ResultStore, load
from simnet.run.calls import run_scenario
from simnet.run.matrix import (
    NEEDS_RELAY,
    PRESETS,
    axis,
    expected_paths,
    matrix_cells,
    matrix_scenario,
)
from simnet.scenario import load_scenario, scenario_from_dict
from simnet.scenario.model import CallSpec, Timeouts

pytestmark = pytest.mark.integration
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _describe(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{r.get('nat_a', '')} -> {r.get('nat_b', '')}: connected={r['connected']} "
        f"path={r['path']} error={r['error']} ({r.get('error_detail')})"
        for r in rows
    )


def _outcome(row: dict[str, Any]) -> str:
    return str(row["path"]) if row["connected"] else "failed"


def test_matrix_with_turn_connects_every_cell_and_relays_where_it_must(tools: Any) -> None:
    rows = run_scenario(matrix_scenario(turn=True), cells=matrix_cells())
    assert len(rows) == len(PRESETS) ** 2
    wrong = [r for r in rows if _outcome(r) not in expected_paths(r["nat_a"], r["nat_b"], True)]
    assert not wrong, _describe(wrong)
    for row in rows:
        if (row["nat_a"], row["nat_b"]) in NEEDS_RELAY:
            assert row["relay_protocol"] == "udp", _describe([row])
    assert not tools.namespaces(f"sn-{rows[0]['run_id']}-")  # this run left nothing


def test_without_turn_hole_punching_works_exactly_where_ice_theory_says() -> None:
    """Direct in every cell where it can work, failed (classified, bounded) where it cannot."""
    quick = CallSpec(timeouts=Timeouts(ice_s=4), data_bytes=100_000)
    rows = run_scenario(matrix_scenario(turn=False), cells=matrix_cells(base=quick))
    wrong = [r for r in rows if _outcome(r) not in expected_paths(r["nat_a"], r["nat_b"], False)]
    assert not wrong, _describe(wrong)
    failed = [r for r in rows if not r["connected"]]
    assert {(r["nat_a"], r["nat_b"]) for r in failed} == NEEDS_RELAY
    assert all(r["error"] == "timeout:ice" for r in failed), _describe(failed)


def _labelled(row: dict[str, Any]) -> str:
    """A family matrix's call as its expectations name it: "direct ipv6", "failed"."""
    return _outcome(row) if not row["connected"] else f"{row['path']} {row['ip_family']}"


def test_dual_stack_matrix_without_turn_connects_every_cell_ipv6_where_ipv4_cannot() -> None:
    """Every network dual-stack: every cell connects directly, the three IPv4 cannot punch
    through over IPv6 (never translated, each firewall opened by its own side's checks)."""
    quick = CallSpec(timeouts=Timeouts(ice_s=4), data_bytes=100_000)
    scenario = matrix_scenario(turn=False, family="dual")
    rows = run_scenario(scenario, cells=matrix_cells(base=quick, family="dual"))
    assert len(rows) == len(PRESETS) ** 2
    wrong = [
        r for r in rows
        if _labelled(r) not in expected_paths(r["nat_a"], r["nat_b"], False, "dual")
    ]  # fmt: skip
    assert not wrong, _describe(wrong)
    assert {r["family"] for r in rows} == {"dual"}
    assert {r["scenario"] for r in rows} == {"nat-matrix-dual-no-turn"}
    for row in rows:  # both families gathered on both sides
        assert row["local_candidates_ipv4"] and row["local_candidates_ipv6"], _describe([row])
        assert row["remote_candidates_ipv4"] and row["remote_candidates_ipv6"], _describe([row])
    rescued = [r for r in rows if (r["nat_a"], r["nat_b"]) in NEEDS_RELAY]
    assert {r["ip_family"] for r in rescued} == {"ipv6"}, _describe(rescued)


def test_ipv6_only_matrix_connects_every_firewall_pair_directly_over_ipv6(
    tmp_path: Path, tools: Any
) -> None:
    """`simnet matrix --family v6`: 3x3 IPv6 firewalls (no NAT), TURN offered; each cell as
    theory says (direct over IPv6), the JSON lines name the family, and the command agrees
    (exit 0)."""
    result = tools.run_cli("matrix", "--family", "v6", "--json", "--out", str(tmp_path),
                           timeout=300)  # fmt: skip
    assert result.returncode == 0, result.output
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(lines) == len(axis("v6")) ** 2
    cells = {(r["nat_a"], r["nat_b"]) for r in lines}
    assert cells == {(a, b) for a in axis("v6") for b in axis("v6")}
    wrong = [
        r for r in lines
        if _labelled(r) not in expected_paths(r["nat_a"], r["nat_b"], True, "v6")
    ]  # fmt: skip
    assert not wrong, _describe(wrong)
    assert {r["family"] for r in lines} == {"v6"}
    assert {r["scenario"] for r in lines} == {"nat-matrix-v6"}
    assert not tools.namespaces(f"sn-{lines[0]['run_id']}-")


def test_udp_blocked_connects_through_turn_over_tls_on_443() -> None:
    scenario = load_scenario(SCENARIOS / "corporate-udp-blocked.yaml")
    [row] = run_scenario(scenario)
    assert row["connected"], _describe([row])
    assert row["path"] == "relay" and row["relay_protocol"] == "tls"
    assert row["relay_server"].endswith(":443")


def test_wrong_turn_credentials_are_a_classified_failure() -> None:
    scenario = load_scenario(SCENARIOS / "relay-only.yaml", ["call.wrong_credentials=true"])
    [row] = run_scenario(scenario)
    assert not row["connected"]
    assert row["error"] in ("turn-auth", "ice-failed"), _describe([row])
    assert any(a["error_code"] == 401 for a in row["turn_attempts"]), row["turn_attempts"]


def test_unreachable_signaling_is_a_classified_failure_within_its_timeout() -> None:
    scenario = load_scenario(SCENARIOS / "home-vs-carrier.yaml")
    signaling = plan_network(scenario).nodes["signaling"].address
    data = scenario.model_dump(mode="json")
    data["nats"]["home"]["firewall"] = {"block": [f"{signaling}/32"]}
    data["call"]["timeouts"] = {"signaling_s": 2}
    [row] = run_scenario(scenario_from_dict(data))
    assert not row["connected"]
    assert row["error"] == "signaling", _describe([row])
    assert row["wall_ms"] < 30_000  # bounded by the phase timeout, not a hang


def test_a_call_with_media_delivers_frames_both_ways(tmp_path: Path, tools: Any) -> None:
    result = tools.run_cli(
        "run",
        str(SCENARIOS / "direct-lan.yaml"),
        "--json",
        "--out",
        str(tmp_path),
        "--set",
        "call.media.audio=true",
        "--set",
        "call.media.video={width: 320, height: 240, fps: 15}",
        "--set",
        "call.duration_s=2",
        timeout=120,
    )
    assert result.returncode == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["connected"] and line["path"] == "direct" and line["error"] is None, line
    [row] = load(tmp_path).to_dict("records")
    for side in ("offerer", "answerer"):
        for kind in ("audio", "video"):
            assert row[f"{side}_{kind}_recv_frames"] > 0, (side, kind)
            assert row[f"{side}_{kind}_sent_kbps"] > 0, (side, kind)
    assert row["scenario"] == "direct-lan" and row["kernel"] and row["aiortc_version"]


def test_run_json_has_the_documented_keys_and_writes_parquet(tmp_path: Path, tools: Any) -> None:
    result = tools.run_cli(
        "run", str(SCENARIOS / "home-vs-carrier.yaml"), "--repeat", "2", "--json",
        "--out", str(tmp_path), timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.output
    lines = [json.loads(x) for x in result.stdout.strip().splitlines()]
    assert [x["run"] for x in lines] == [0, 1]
    for line in lines:
        assert set(line) >= {
            "scenario", "run", "connected", "path", "local_candidate", "remote_candidate",
            "relay_protocol", "ice_connect_ms", "setup_ms", "dc_goodput_mbps", "rtt_ms", "error",
        }  # fmt: skip
        assert line["path"] == "relay" and line["setup_ms"] > 0 and line["dc_goodput_mbps"] > 0
    frame = load(tmp_path)
    assert len(frame) == 2 and set(frame["git_revision"]) and set(frame["scenario_hash"])


def test_http_long_poll_signaling_carries_a_call_across_nats() -> None:
    scenario = load_scenario(SCENARIOS / "cgnat-double-nat.yaml", ["call.signaling=http"])
    [row] = run_scenario(scenario)
    assert row["connected"] and row["error"] is None, _describe([row])


def test_compare_fails_only_on_a_real_regression(tmp_path: Path, tools: Any) -> None:
    """Same code twice: exit 0. An extra 20 ms on one peer's link: exit 1, naming the cell.

    "Same code: exit 0" is a statistical claim, so its failure rate is chosen, not hoped for.
    Two batches of the same calls are exchangeable (5 batches of 6 relayed calls here: goodput
    medians 23.3-25.8 Mbit/s, each batch spreading 19-30), so a metric is flagged worse by chance
    with the exact Mann-Whitney probability: 0.43 % per metric at 6 vs 6 runs and alpha 0.01,
    about 1.7 % over the four compared distributions (seen once in five suite runs). At 10 vs 10
    runs and alpha 0.001 it is 0.036 % per metric, 0.14 % for the test, while the 20 ms delay
    separates set-up and RTT completely: RTT ~1 ms against over 40 ms, set-up 50-600 ms
    against ~860 ms (measured). Six slower runs suffice for that: 10 vs 6 runs completely apart
    give p = 2.5e-4, under alpha even with one pair out of order (5.0e-4). 20 ms, not more: a
    relayed call through a 100 ms link takes 5.6 s, through a 20 ms one 1.6 s.
    """
    overrides = ["call.data_bytes=20000"]
    runs = {
        "baseline": (overrides, 10),
        "same": (overrides, 10),
        "slower": ([*overrides, "nats.alice-home.link={delay_ms: 20}"], 6),
    }
    for name, (sets, repeat) in runs.items():
        scenario = load_scenario(SCENARIOS / "relay-only.yaml", sets)
        store_dir = tmp_path / name
        store = ResultStore(store_dir, "relay-only")
        rows = run_scenario(scenario, repeat=repeat, on_row=store.write)
        assert all(r["connected"] for r in rows), _describe(rows)
    alpha = ("--alpha", "0.001")
    same = tools.run_cli("compare", str(tmp_path / "baseline"), str(tmp_path / "same"), *alpha)
    assert same.returncode == 0, same.output
    slower = tools.run_cli(
        "compare", str(tmp_path / "baseline"), str(tmp_path / "slower"), *alpha, "--json"
    )
    assert slower.returncode == 1, slower.output
    assert "relay-only" in json.dumps(json.loads(slower.stdout)["regressions"])

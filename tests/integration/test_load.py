"""Many calls at once through one real coturn, between aiortc peers that share processes.

Why: a load curve is only worth reading if every call in it was a real, separate call: each
pair behind its own NATs, each peer's packets leaving through its own namespace although many
peers share one process, the calls overlapping in time, and coturn's limits biting as
configured (`turn-quota`, not a generic ICE failure). And a load run must leave nothing behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simnet.net import netns
from simnet.peer.pion import ensure_built
from simnet.results.store import load
from simnet.run.load import run_load
from simnet.scenario.load import scenario_from_dict
from tests.integration.conftest import run_cli
from tests.integration.peerbench import run_processes
from tests.solo import SOLO

pytestmark = [pytest.mark.integration, *SOLO, pytest.mark.timeout(300)]

PAIRS = 4


def scenario(**call: Any) -> dict[str, Any]:
    """PAIRS callers and callees, each behind a symmetric NAT of its own: every call relays."""
    return {
        "name": "load-test",
        "nats": {"home": {"preset": "symmetric"}, "office": {"preset": "symmetric"}},
        "hosts": {
            "alice": {"behind": "home", "count": PAIRS, "own_nat": True},
            "bob": {"behind": "office", "count": PAIRS, "own_nat": True},
        },
        "servers": {"turn": {"kind": "turn"}, "signaling": {"kind": "signaling"}},
        "call": {"offerer": "alice", "answerer": "bob", "data_bytes": 200_000, **call},
    }


def _sent_bytes(ns: str) -> int:
    with netns.entered(ns), open("/proc/thread-self/net/dev") as dev:
        for line in dev:
            name, _, fields = line.partition(":")
            if name.strip() == "eth0":
                return int(fields.split()[8])
    raise AssertionError(f"no eth0 in {ns}")


def test_concurrent_relayed_calls_share_processes_but_not_namespaces() -> None:
    """Levels of 1 and PAIRS calls with audio, the peers in two processes: every call connects
    through coturn; the PAIRS calls overlap in time; each peer's traffic leaves through its own
    interface (a hosted peer's sockets live in its own namespace, not its process's)."""
    rows: list[Any] = []
    sent: dict[str, int] = {}
    run_ids: list[str] = []

    def on_row(row: Any) -> None:
        rows.append(row)
        run_ids.append(row["run_id"])
        if row["concurrency"] == PAIRS:
            for host in (row["offerer"], row["answerer"]):
                sent[host] = _sent_bytes(f"sn-{row['run_id']}-{host}")

    loaded = scenario_from_dict(scenario(media={"audio": True}, duration_s=2))
    figures = run_load(loaded, [1, PAIRS], on_row=on_row, shared_processes=2)
    assert [f.concurrency for f in figures] == [1, PAIRS]
    assert len(rows) == 1 + PAIRS
    for row in rows:
        assert row["connected"], (row["error"], row["error_detail"])
        assert row["path"] == "relay" and row["relay_protocol"] == "udp"
        assert row["offerer_audio_recv_frames"] > 0 and row["answerer_audio_recv_frames"] > 0
    big = [r for r in rows if r["concurrency"] == PAIRS]
    assert sorted(r["call_index"] for r in big) == list(range(PAIRS))
    assert {r["offerer"] for r in big} == {f"alice-{i}" for i in range(PAIRS)}
    # the calls overlapped: each started before any other had ended
    starts = [r["start_offset_ms"] for r in big]
    ends = [r["start_offset_ms"] + r["wall_ms"] for r in big]
    assert max(starts) < min(ends)
    # every peer's packets left through its own interface: each caller's its transfer, each
    # callee's its audio (a peer whose sockets sat in another namespace would send ~nothing)
    assert len(sent) == 2 * PAIRS
    assert all(sent[f"alice-{i}"] > 200_000 for i in range(PAIRS)), sent
    assert all(sent[f"bob-{i}"] > 5_000 for i in range(PAIRS)), sent
    level = figures[1]
    assert level.connected_share == 1.0 and level.relay_share == 1.0
    assert level.relayed_mbps > 0 and level.coturn_cpu_pct > 0 and level.agent_cpu_pct > 0
    assert level.setup_ms_p50 is not None and level.setup_ms_p95 is not None
    assert level.setup_ms_p50 <= level.setup_ms_p95
    print(f"\nload levels: {[f.model_dump() for f in figures]}")
    run_id = run_ids[0]
    assert not netns.list_names(f"sn-{run_id}-")
    assert not Path(f"/run/simnet/{run_id}.json").exists()
    assert not run_processes(run_id)  # no peer host, agent or coturn outlived the run


def test_past_coturns_allocation_quota_calls_fail_as_turn_quota() -> None:
    """Relay-only calls, coturn allowing 2 allocations at once: each call needs 2 (one per
    peer), so of 3 calls at once at least one is refused, and it says `turn-quota`."""
    data = scenario(ice_policy="relay", concurrent=3, data_bytes=10_000, duration_s=0)
    data["servers"]["turn"]["limits"] = {"max_allocations": 2}
    rows: list[Any] = []
    run_load(scenario_from_dict(data), [3], on_row=rows.append, shared_processes=1)
    errors = [r["error"] for r in rows]
    assert "turn-quota" in errors, [(r["error"], r["error_detail"]) for r in rows]
    assert set(errors) <= {None, "turn-quota"}, [(r["error"], r["error_detail"]) for r in rows]


def test_a_single_call_level_from_a_file_of_many_pairs_calls_the_one_pair_it_builds() -> None:
    """`--calls 1` builds one instance of each template, named as `simnet run` names it
    (`alice`, not `alice-0`): the level calls that pair (it once asked for `alice-0`, which the
    network built for one call does not have, and ended in an internal error)."""
    rows: list[Any] = []
    data = scenario(data_bytes=10_000, duration_s=0)
    figures = run_load(scenario_from_dict(data), [1], on_row=rows.append, shared_processes=1)
    assert [f.concurrency for f in figures] == [1] and len(rows) == 1
    row = rows[0]
    assert (row["offerer"], row["answerer"]) == ("alice", "bob")
    assert row["connected"] and row["path"] == "relay", (row["error"], row["error_detail"])


def test_simnet_load_prints_one_object_per_level_and_stores_every_call(tmp_path: Path) -> None:
    """`--media audio` replays the tone (encoded once, counted not decoded): the calls still
    carry Opus at 50 packets a second each way, and each side counts what arrived."""
    path = tmp_path / "load.yaml"
    path.write_text(json.dumps(scenario()))
    out = tmp_path / "results"
    done = run_cli("load", str(path), "--calls", "1,2", "--media", "audio", "--json",
                   "--out", str(out), timeout=240)  # fmt: skip
    assert done.returncode == 0, done.output
    levels = [json.loads(line) for line in done.stdout.splitlines()]
    keys = {"concurrency", "calls", "connected_share", "setup_ms_p50", "setup_ms_p95",
            "relay_share", "turn_allocation_failures", "relayed_mbps", "coturn_cpu_pct",
            "agent_cpu_pct", "emulator_limited"}  # fmt: skip
    assert [level["concurrency"] for level in levels] == [1, 2]
    assert all(keys <= set(level) for level in levels)
    stored = load(out)
    assert len(stored) == 3 and set(stored["concurrency"]) == {1, 2}
    for row in stored.to_dict("records"):
        assert row["connected"] and row["error"] is None, (row["error"], row["error_detail"])
        for side in ("offerer", "answerer"):
            # the 2 s media window at 50 frames a second, a frame or two at its edges aside
            assert row[f"{side}_audio_recv_frames"] >= 90, row
            assert row[f"{side}_audio_recv_lost"] == 0, row


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--calls", "0"], "--calls"),
        (["--calls", "two"], "--calls"),
        (["--calls", f"{PAIRS + 1}"], f"hosts.alice.count is {PAIRS}"),
    ],
)
def test_bad_load_input_is_one_clear_error(tmp_path: Path, args: list[str], named: str) -> None:
    path = tmp_path / "load.yaml"
    path.write_text(json.dumps(scenario()))
    done = run_cli("load", str(path), *args)
    assert done.returncode == 2, done.output
    assert named in done.output and "Traceback" not in done.output


def test_simnet_load_with_pion_peers_measures_coturn(tmp_path: Path) -> None:
    """`--peers pion`: every caller and callee is a pion agent (a process each), every call
    relays through coturn, and the level says what coturn did: its CPU, the packets its
    interface sent per second and per second of its CPU. No agent outlives the run."""
    ensure_built()
    path = tmp_path / "load.yaml"
    path.write_text(json.dumps(scenario(duration_s=2, turn_transports=["udp"])))
    out = tmp_path / "results"
    done = run_cli("load", str(path), "--calls", "2", "--peers", "pion", "--media", "audio",
                   "--json", "--out", str(out), timeout=120)  # fmt: skip
    assert done.returncode == 0, done.output
    [level] = [json.loads(line) for line in done.stdout.splitlines()]
    assert level["connected_share"] == 1.0 and level["relay_share"] == 1.0, level
    assert level["coturn_cpu_pct"] > 0 and level["relayed_pps"] > 0, level
    assert level["relayed_packets_per_coturn_cpu_s"] > 0, level
    assert level["emulator_late"] is False, level
    # two calls never saturate the harness's own processes; the machine as a whole may be busy
    # (a shared host's steal: CI, once, the suite taking twice its usual time), and then the
    # flag says so by the machine's idle CPU, which is not this test's to assert
    assert level["agent_cpu_pct_peak"] <= 90 and level["harness_cpu_pct_peak"] <= 90, level
    assert not level["harness_limited"] or level["machine_idle_pct_low"] < 10, level
    stored = load(out)
    assert set(stored["offerer_peer"]) == {"pion"} and set(stored["answerer_peer"]) == {"pion"}
    assert not run_processes(str(stored["run_id"].iloc[0]))

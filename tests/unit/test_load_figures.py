"""A load level's figures, coturn's limits and how a refused allocation is classified.

Why: a load curve is read as "at 50 calls, 96 % connected in 1.2 s p95, coturn at 30 % CPU":
each of those numbers is computed here from rows and counters, so each is checked on rows whose
answer is known. The limits are what a scenario sets to see what happens past them; a call that
lost its only path to a quota must say `turn-quota`, not look like an ICE failure.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

import pytest

from simnet import cli
from simnet.errors import ScenarioError
from simnet.peer.aiortc.aioice_adapter import TurnRecorder
from simnet.peer.protocol import TurnAttempt
from simnet.peerkinds import PeerPair
from simnet.results.load_levels import LevelResources, level_figures
from simnet.results.schema import CallOutcome, ResultRow, TurnAttemptRecord
from simnet.run.load import PeakShare, host_groups, peer_overrides, sized
from simnet.run.one_call import turn_limits
from simnet.scenario.load import load_scenario, scenario_from_dict
from simnet.services.coturn import CoturnFiles, TurnConfig, turnserver_argv

RESOURCES = LevelResources(
    wall_s=4.0,
    coturn_cpu_s=1.0,
    coturn_rss_mb=12.5,
    agent_cpu_s=7.2,
    agent_cpu_s_max=3.0,
    agent_cpu_pct_peak=80.0,
    relayed_bytes=5_000_000,
    relayed_packets=40_000,
    turn_udp_drops=3,
    peer_udp_drops=0,
    cores=2,
    emulator_limited=False,
)


def row(connected: bool = True, media: dict[str, float] | None = None, **fields: Any) -> ResultRow:
    base: dict[str, Any] = {"connected": connected, "setup_ms": 100.0, "path": "relay"}
    if not connected:
        base.update(setup_ms=None, path=None, error="ice-failed")
    call = CallOutcome(**{**base, **fields}, media=media or {})
    return ResultRow(
        call=call, scenario="load", scenario_hash="", seed=0, run=0, run_id="r", wall_ms=0.0
    )


def test_shares_quantiles_and_rates_come_from_the_rows_and_counters() -> None:
    rows = [row(setup_ms=100.0, path="direct")]
    rows += [row(setup_ms=float(ms)) for ms in range(200, 1100, 100)]  # 10 calls, 9 relayed
    rows.append(row(connected=False))
    figures = level_figures(11, rows, RESOURCES)
    assert figures.calls == 11 and figures.concurrency == 11
    assert figures.connected_share == pytest.approx(10 / 11, abs=1e-4)
    assert figures.relay_share == 0.9  # of the connected calls
    assert figures.setup_ms_p50 == 550.0 and figures.setup_ms_p95 == 955.0
    assert figures.relayed_mbps == 10.0  # 5 MB in 4 s
    assert figures.relayed_pps == 10_000.0  # 40 000 packets in 4 s
    assert figures.relayed_packets_per_coturn_cpu_s == 40_000  # in 1 s of coturn's CPU
    assert figures.emulator_late is False
    assert figures.coturn_cpu_pct == 25.0 and figures.agent_cpu_pct == 180.0
    assert figures.harness_limited  # 180 % of 2 cores is above 85 %
    assert figures.errors == {"ice-failed": 1}


def test_turn_failures_and_retries_are_counted_per_call() -> None:
    attempts = [
        TurnAttemptRecord(side="offer", server="192.0.2.10:3478", transport="udp", ok=False,
                          error_code=486, elapsed_ms=1.0),
        TurnAttemptRecord(side="offer", server="192.0.2.10:3478", transport="udp", ok=True,
                          elapsed_ms=1.0),
        TurnAttemptRecord(side="offer", server="192.0.2.10:3478", transport="tcp", ok=True,
                          elapsed_ms=1.0),
        TurnAttemptRecord(side="answer", server="192.0.2.10:3478", transport="udp", ok=True,
                          elapsed_ms=1.0),
    ]  # fmt: skip
    figures = level_figures(2, [row(turn_attempts=attempts), row()], RESOURCES)
    assert (figures.turn_allocation_failures, figures.turn_allocation_retries) == (1, 1)
    idle = replace(RESOURCES, agent_cpu_s=1.0, agent_cpu_s_max=0.5)
    assert not level_figures(1, [row()], idle).harness_limited  # 25 % of 2 cores
    one_busy = replace(RESOURCES, agent_cpu_s=4.0, agent_cpu_s_max=3.8)
    figures = level_figures(1, [row()], one_busy)
    assert figures.harness_limited and figures.agent_cpu_pct_max == 95.0  # one core at 95 %
    assert figures.agent_cpu_pct_peak == 95.0  # no second busier than the level's average


def test_one_saturated_second_limits_the_harness_though_the_average_does_not() -> None:
    """50 calls set up at once: a process's average 73 % of a core, its busiest second 92 %."""
    burst = replace(RESOURCES, agent_cpu_s=5.8, agent_cpu_s_max=2.92, agent_cpu_pct_peak=92.0)
    figures = level_figures(50, [row()], burst)
    assert figures.agent_cpu_pct_max == 73.0 and figures.agent_cpu_pct_peak == 92.0
    assert figures.harness_limited
    calm = replace(burst, agent_cpu_pct_peak=83.0)  # 25 calls: 62 % on average, 83 % at most
    assert not level_figures(25, [row()], calm).harness_limited


def test_media_loss_and_jitter_are_per_call_medians() -> None:
    rows = [
        row(
            media={
                "offerer_audio_recv_lost": 2,
                "answerer_audio_recv_lost": 1,
                "offerer_audio_recv_jitter_ms": 3.0,
            }
        ),
        row(
            media={
                "offerer_audio_recv_lost": 0,
                "answerer_audio_recv_lost": 0,
                "offerer_audio_recv_jitter_ms": 5.0,
            }
        ),
        row(),
    ]
    figures = level_figures(3, rows, RESOURCES)
    assert figures.media_lost_packets_p50 == 1.5  # (3 + 0) / 2: calls with media only
    assert figures.media_jitter_ms_p50 == 4.0


def test_an_empty_level_has_no_quantiles() -> None:
    figures = level_figures(0, [], RESOURCES)
    assert figures.calls == 0 and figures.setup_ms_p50 is None and figures.connected_share == 0


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_each_process_hosts_as_many_senders_as_receivers(processes: int) -> None:
    pairs = [(f"alice-{i}", f"bob-{i}") for i in range(6)]
    groups = host_groups(pairs, processes)
    assert sorted(p for g in groups for p in g) == sorted(p for pair in pairs for p in pair)
    for group in groups:
        senders = sum(p.startswith("alice") for p in group)
        assert senders == len(group) - senders  # as many offerers as answerers
    if processes > 1:  # a call never has both its peers in one process
        assert all(not ({a, b} <= set(g)) for a, b in pairs for g in groups)
    assert host_groups(pairs, 0) == []


def test_limits_reach_coturns_command_line(tmp_path: Any) -> None:
    scenario = scenario_from_dict(
        {
            "servers": {
                "turn": {
                    "kind": "turn",
                    "limits": {"max_allocations": 4, "user_quota": 2, "bps_capacity": 10_000,
                               "max_bps": 5_000, "relay_ports": [50000, 50009]},
                }
            }
        }
    )  # fmt: skip
    limits = scenario.servers["turn"].limits
    config = TurnConfig(listening_ips=(IPv4Address("192.0.2.10"),), **turn_limits(limits))
    argv = turnserver_argv(config, CoturnFiles(tmp_path))
    pairs = dict(itertools.pairwise(argv))
    assert pairs["--total-quota"] == "4" and pairs["--user-quota"] == "2"
    assert pairs["--bps-capacity"] == "10000" and pairs["--max-bps"] == "5000"
    assert (pairs["--min-port"], pairs["--max-port"]) == ("50000", "50009")
    assert "--total-quota" not in turnserver_argv(
        TurnConfig(listening_ips=config.listening_ips), CoturnFiles(tmp_path)
    )


@pytest.mark.parametrize(
    ("server", "named"),
    [
        ({"kind": "signaling", "limits": {"user_quota": 1}}, "only a TURN server"),
        ({"kind": "turn", "limits": {"relay_ports": [60000, 50000]}}, "relay_ports"),
        ({"kind": "turn", "limits": {"user_quota": 0}}, "user_quota"),
        ({"kind": "turn", "limits": {"max_allocs": 3}}, "did you mean 'max_allocations'"),
    ],
)
def test_bad_limits_are_one_clear_error(server: dict[str, Any], named: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict({"servers": {"t": server}})
    assert named in str(info.value)


def attempt(code: int | None, ok: bool = False) -> TurnAttempt:
    return TurnAttempt(
        server="192.0.2.10:3478", transport="udp", ok=ok, error_code=code, elapsed_ms=1.0
    )


@pytest.mark.parametrize(
    ("codes", "kind"),
    [([486], "turn-quota"), ([508, 401], "turn-quota"), ([401], "turn-auth"), ([None], None)],
)
def test_a_refused_allocation_is_classified_by_its_code(
    codes: list[int | None], kind: str | None
) -> None:
    recorder = TurnRecorder(None)
    recorder.attempts += [attempt(code) for code in codes]
    refusal = recorder.refusal()
    assert (refusal[0] if refusal else None) == kind


def test_a_call_whose_answerer_was_refused_says_so_not_what_the_offerer_saw() -> None:
    """The answerer got no allocation (quota); the offerer only saw a peer without candidates
    (ice-failed): the row names the cause."""
    from simnet.call.row import call_row
    from simnet.peer.protocol import CallResult

    offer = CallResult(role="offer", connected=False, error="ice-failed")
    answer = CallResult(role="answer", connected=False, error="turn-quota")
    assert call_row(offer, answer).error == "turn-quota"
    assert call_row(offer, offer.model_copy(update={"error": "timeout:ice"})).error == "ice-failed"


def test_the_peak_share_is_the_busiest_process_in_its_busiest_window() -> None:
    """Samples every 0.5 s: process 1 runs a core flat out for one second only, process 2
    steadily at half a core; a process first seen late counts from when it was first seen."""
    peak = PeakShare(1.0)
    samples = [
        (0.0, {1: 0.0, 2: 0.0}),
        (0.5, {1: 0.1, 2: 0.25}),
        (1.0, {1: 0.2, 2: 0.5}),  # window 0-1 s: 1 -> 20 %, 2 -> 50 %
        (1.5, {1: 0.7, 2: 0.75, 3: 9.0}),
        (2.0, {1: 1.2, 2: 1.0, 3: 9.1}),  # window 1-2 s: 1 -> 100 %; 3 had no sample at 1 s
        (2.5, {1: 1.25, 2: 1.25, 3: 9.2}),
    ]
    seen = [peak.add(t, cpu) for t, cpu in samples]
    assert seen[:2] == [0.0, 0.0]  # no window of a second yet
    assert seen[2] == pytest.approx(50.0)
    assert seen[4] == pytest.approx(100.0) and seen[5] == pytest.approx(100.0)


def test_packets_per_coturn_second_is_none_without_coturn_cpu_and_late_is_carried() -> None:
    idle = replace(RESOURCES, coturn_cpu_s=0.0, emulator_late=True)
    figures = level_figures(1, [row()], idle)
    assert figures.relayed_packets_per_coturn_cpu_s is None
    assert figures.emulator_late is True


def test_peers_option_sets_the_callers_and_callees_kinds() -> None:
    """`simnet load --peers pion` makes every instance of the call's offerer and answerer
    templates a pion peer; `aiortc,pion` the callers aiortc and the callees pion."""
    scenario = load_scenario("scenarios/turn-load.yaml")
    both: PeerPair = ("pion", "pion")
    assert peer_overrides(scenario, both, "x") == ["hosts.alice.peer=pion", "hosts.bob.peer=pion"]
    mixed = load_scenario(
        "scenarios/turn-load.yaml", peer_overrides(scenario, ("aiortc", "pion"), "x")
    )
    assert (mixed.hosts["alice"].peer_kind, mixed.hosts["bob"].peer_kind) == ("aiortc", "pion")


@pytest.mark.parametrize("bad", ["nope", "pion,pion,pion", ""])
def test_a_bad_peers_option_is_one_usage_error_before_anything_runs(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = sys.argv
    sys.argv = ["simnet", "load", "scenarios/turn-load.yaml", "--calls", "1", "--peers", bad]
    try:
        with pytest.raises(SystemExit) as ended:
            cli.main()
    finally:
        sys.argv = argv
    output = " ".join(capsys.readouterr().err.split())
    assert ended.value.code == 2 and "--peers" in output and "Traceback" not in output


def test_a_load_run_builds_only_the_pairs_its_largest_level_uses() -> None:
    scenario = load_scenario("scenarios/turn-load.yaml", ["hosts.alice.count=40"])
    built = sized(scenario, 10, "x")
    assert (built.hosts["alice"].count, built.hosts["bob"].count) == (10, 10)
    assert sized(scenario, 45, "x").hosts["alice"].count == 40  # never more than the file has
    assert scenario.hosts["alice"].count == 40  # the user's scenario (naming the rows) unchanged


def test_a_saturated_load_command_process_limits_the_harness() -> None:
    """The load command's own process controls every call and serves signaling: at 95 % of a
    core in its busiest second, the set-up times measure it, whatever the peers used."""
    quiet = replace(RESOURCES, agent_cpu_s=0.4, agent_cpu_s_max=0.1, agent_cpu_pct_peak=5.0)
    assert not level_figures(1, [row()], quiet).harness_limited
    busy = level_figures(1, [row()], replace(quiet, harness_cpu_s=3.0, harness_cpu_pct_peak=95.0))
    assert busy.harness_limited and busy.harness_cpu_pct == 75.0  # 3 s of CPU in 4 s
    assert busy.harness_cpu_pct_peak == 95.0


def test_a_machine_without_idle_cpu_limits_the_level_unless_coturn_used_it() -> None:
    """100 pion calls at once left 0-4 % of the machine idle during their set-up with coturn at
    6-18 % of a core: the peers and the kernel forwarding their packets were the limit, not
    coturn. The busiest second decides: calls timing out leave the level's average idle."""
    quiet = replace(RESOURCES, agent_cpu_s=0.4, agent_cpu_s_max=0.1, agent_cpu_pct_peak=5.0)
    unknown = level_figures(1, [row()], quiet)  # no machine counters: no verdict from them
    assert unknown.machine_idle_pct is None and unknown.machine_idle_pct_low is None
    assert not unknown.harness_limited
    # 4 s on 2 CPUs: 8 CPU-seconds, 2.4 idle, 1.2 stolen; coturn 1 s of the 5.6 busy; the
    # busiest second had both cores busy but 3 %
    saturated = replace(
        quiet, machine_cpu_s=8.0, machine_idle_s=2.4, machine_steal_s=1.2,
        machine_busy_pct_peak=194.0,
    )  # fmt: skip
    figures = level_figures(1, [row()], saturated)
    assert figures.harness_limited
    assert (figures.machine_idle_pct, figures.machine_steal_pct) == (30.0, 15.0)
    assert figures.machine_idle_pct_low == 3.0
    # coturn using most of what was busy is coturn's own ceiling, not the harness's
    assert not level_figures(1, [row()], replace(saturated, coturn_cpu_s=3.0)).harness_limited
    calm = replace(saturated, machine_busy_pct_peak=150.0)  # 25 % idle in the busiest second
    assert not level_figures(1, [row()], calm).harness_limited

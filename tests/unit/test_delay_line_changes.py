"""A delay line changed while it holds packets, without a kernel: the swap logic of
`nfqueue_helper.Line`, its control channel, and what the userspace backend renders for a line
kept through a change.

Why: the integration tests (`test_live_link_changes`) show the result on real packets, but
only here can the exact release time of every packet around a change be checked: held packets
keep theirs, and without reordering nothing after the change leaves before them. The clock is
a fake one, advanced by hand, so the timings are exact and the tests do not sleep.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import cast

import pytest

from simnet.errors import SimnetError
from simnet.net.impair.measure import clock_map
from simnet.net.impair.nfqueue import reconfigure
from simnet.net.impair.nfqueue_helper import (
    EARLY_S,
    STALE_STAMP_S,
    ArrivalClock,
    Line,
    WakeLead,
)
from simnet.net.impair.rules import LinkTarget, egress_chain, line_config, queue_rules
from simnet.net.impair.shaping import DirectionConfig, Shaper, encode
from simnet.scenario.model import LinkSpec
from tests.unit.delay_line_model import (
    Clock,
    Packet,
    StampedPacket,
    config,
    control_with,
    running_helper,
)
from tests.unit.impaired_link import SPARED


class Bench:
    """One Line on a fake clock: packets arrive at given times, releases are logged."""

    def __init__(self, config: DirectionConfig) -> None:
        self.clock = Clock()
        self.line = Line(cast(asyncio.AbstractEventLoop, self.clock), config)
        self.log: list[tuple[int, float | None]] = []
        self.arrived: dict[int, float] = {}

    def arrive(self, i: int, t: float) -> None:
        self.clock.run_until(t)
        self.arrived[i] = t
        self.line.on_packet(Packet(self.clock, self.log, i))

    def change(self, t: float, config: DirectionConfig) -> None:
        self.clock.run_until(t)
        self.line.reconfigure(config)

    def released(self) -> dict[int, float]:
        return {i: t for i, t in self.log if t is not None}


# --- the line -----------------------------------------------------------------------------


def test_a_delay_decrease_keeps_held_release_times_and_lets_nothing_overtake() -> None:
    bench = Bench(config(delay_s=0.08))
    for i in range(5):
        bench.arrive(i, i * 0.01)
    bench.change(0.05, config(delay_s=0.0))
    for i in range(5, 15):
        bench.arrive(i, i * 0.01)
    bench.clock.run_until(1.0)
    released = bench.released()
    assert [i for i, _ in bench.log] == list(range(15))
    for i in range(5):
        assert released[i] == pytest.approx(i * 0.01 + 0.08)  # as scheduled before the change
    last_held = released[4]
    for i in range(5, 15):  # behind the last held packet, then as soon as they arrive
        assert released[i] == pytest.approx(max(bench.arrived[i], last_held))


def test_a_delay_increase_delays_only_what_comes_after() -> None:
    bench = Bench(config(delay_s=0.01))
    bench.arrive(0, 0.0)
    bench.change(0.001, config(delay_s=0.05))
    bench.arrive(1, 0.002)
    bench.clock.run_until(1.0)
    assert bench.released() == pytest.approx({0: 0.01, 1: 0.052})


def test_leaving_reorder_keeps_each_held_packets_time_and_order_holds_from_then_on() -> None:
    jittery = config(delay_s=0.05, jitter_s=0.04, reorder=True, seed=3)
    twin = Shaper(jittery)  # the same draws, to know each held packet's release time
    bench = Bench(jittery)
    want = {}
    for i in range(50):
        bench.arrive(i, i * 0.001)
        due = twin.due(i * 0.001)
        assert due is not None
        want[i] = due
    bench.change(0.05, config(delay_s=0.0))
    for i in range(50, 70):
        bench.arrive(i, 0.05 + (i - 49) * 0.001)
    bench.clock.run_until(1.0)
    released = bench.released()
    held = [i for i in range(50) if want[i] > 0.05]
    assert held, "the test needs packets held across the change"
    for i in range(50):
        assert released[i] == pytest.approx(want[i])
    order = [i for i, _ in bench.log]
    assert order[: len(order) - 20] != sorted(order[: len(order) - 20])  # reordered before
    assert order[-20:] == list(range(50, 70))  # after the change: in order, behind all held
    assert min(released[i] for i in range(50, 70)) >= max(want[i] for i in held) - 1e-9


def test_entering_reorder_lets_a_shorter_delay_overtake() -> None:
    bench = Bench(config(delay_s=0.08))
    for i in range(3):
        bench.arrive(i, i * 0.01)
    bench.change(0.025, config(delay_s=0.01, reorder=True))
    bench.arrive(3, 0.03)
    bench.clock.run_until(1.0)
    assert [i for i, _ in bench.log] == [3, 0, 1, 2]
    assert bench.released() == pytest.approx({0: 0.08, 1: 0.09, 2: 0.10, 3: 0.04})


def test_the_queue_bound_is_the_lines_own_so_a_change_can_raise_it() -> None:
    bench = Bench(config(delay_s=1.0, queue_packets=3))
    for i in range(5):
        bench.arrive(i, 0.0)
    assert bench.log == [(3, None), (4, None)] and bench.line.overflowed == 2
    bench.change(0.1, config(delay_s=1.0, queue_packets=10))
    for i in range(5, 10):
        bench.arrive(i, 0.1)
    assert len(bench.line) == 8 and bench.line.overflowed == 2


def test_a_change_cannot_move_a_queue() -> None:
    bench = Bench(config(delay_s=0.01))
    with pytest.raises(ValueError, match="cannot move queue 0"):
        bench.line.reconfigure(config(queue=1))
    with pytest.raises(ValueError, match="cannot move queue 0"):
        bench.line.reconfigure(config(bind_in=("sn-x-a",)))


def test_the_gilbert_elliott_state_outlives_a_change_of_its_odds_only() -> None:
    shaper = Shaper(config(burst=(0.1, 0.5, 1.0, 0.0)))
    shaper.bad = True
    shaper.reconfigure(config(burst=(0.2, 0.3, 1.0, 0.0)))
    assert shaper.bad  # the channel is still in its bad state
    shaper.reconfigure(config(loss=0.1))
    assert not shaper.bad


# --- the control channel --------------------------------------------------------------------


def test_control_applies_a_line_split_across_reads_and_binds_new_directions() -> None:
    up, down = config(delay_s=0.01), config(name="x.down", queue=1, delay_s=0.04)
    control, bound = control_with(up)
    text = encode([config(delay_s=0.08), down]).encode() + b"\n"
    assert control.feed(text[:10]) == []
    assert control.feed(text[10:]) == ["ok"]
    assert control.lines[0].config.delay_s == 0.08 and control.lines[0].changes == 1
    assert bound == [down] and control.lines[1].config == down
    assert control.feed(text) == ["ok"]  # the same again: nothing to change
    assert control.lines[0].changes == 1 and bound == [down]


@pytest.mark.parametrize(
    ("configs", "error"),
    [
        ([config(delay_s=0.5), config(name="bad", queue=99)], "cannot bind queue 99"),
        ([config(delay_s=0.5), config(queue=0)], "a queue is named twice"),
        ([config(delay_s=0.5, bind_in=("elsewhere",))], "is bound in"),
    ],
)
def test_control_changes_all_or_nothing(configs: list[DirectionConfig], error: str) -> None:
    control, _ = control_with(config(delay_s=0.01))
    (answer,) = control.feed(encode(configs).encode() + b"\n")
    assert answer.startswith("error ") and error in answer
    assert control.lines[0].config.delay_s == 0.01 and control.lines[0].changes == 0


def test_control_refuses_what_is_not_a_configuration() -> None:
    control, _ = control_with(config(delay_s=0.01))
    assert control.feed(b"[{]\n\n")[0].startswith("error bad configuration")
    assert control.lines[0].changes == 0


def test_a_running_helper_answers_on_its_pipes_and_outlives_the_end_of_them(
    tmp_path: Path,
) -> None:
    """The real process and the real caller side, with no queue bound (no kernel needed)."""
    with running_helper(tmp_path) as (proc, helper):
        reconfigure(helper, [])
        assert proc.stdin is not None
        proc.stdin.write(b'[{"name": "x"}]\n')  # no queue number
        proc.stdin.flush()
        with pytest.raises(SimnetError, match="refused the new link: bad configuration"):
            reconfigure(helper, [])  # reads the answer to the line above first
        proc.stdin.close()  # its owner went away: it shapes on, until told to stop
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.3)
    assert proc.returncode == 0


# --- what the backend renders for a line kept through a change ------------------------------


def target(spec: dict[str, object]) -> LinkTarget:
    return LinkTarget("alice", "sn-x-alice", "eth0", "sn-x-internet", "p3", LinkSpec(**spec))


def test_a_kept_line_without_delay_holds_nothing_and_keeps_deciding_the_loss() -> None:
    t = target({"loss_pct": 5, "down": {"delay_ms": 30}})
    up = line_config(t, "up")
    assert (up.delay_s, up.jitter_s, up.burst, up.loss, up.queue) == (0.0, 0.0, None, 0.05, 0)
    assert "drop" in egress_chain(t, "up")  # no line: nftables drops
    assert "drop" not in egress_chain(t, "up", lined=True)  # a kept line: the line drops


def test_queue_rules_follow_the_fed_directions_and_can_replace_a_namespace_whole() -> None:
    t = target({})  # ideal now, but both directions still go through the kept line
    rules = queue_rules([t], {}, fed={"alice": ("up", "down")}, flush=True)
    assert rules == {
        "sn-x-internet": (
            f"*raw\n-F PREROUTING\n-F OUTPUT\n{SPARED}"
            "-A PREROUTING -i p3 -j NFQUEUE --queue-num 0\nCOMMIT\n"
        ),
        "sn-x-alice": (
            f"*raw\n-F PREROUTING\n-F OUTPUT\n{SPARED}"
            "-A PREROUTING -i eth0 -j NFQUEUE --queue-num 1\nCOMMIT\n"
        ),
    }
    assert queue_rules([t], {}) == {}  # by default only what delays is fed


# --- counting from the kernel's arrival stamp, timers led by the loop's latency ------------


def test_a_packet_counts_from_its_kernel_arrival_not_from_when_it_was_read() -> None:
    """Queued at 10 ms, read at 10.4 ms (the helper was busy): a 50 ms line releases it at
    60 ms, not 60.4."""
    clock = Clock()
    log: list[tuple[int, float | None]] = []
    line = Line(
        cast(asyncio.AbstractEventLoop, clock),
        config(delay_s=0.05),
        arrival=lambda p: cast(StampedPacket, p).at,
    )
    clock.run_until(0.0104)
    line.on_packet(StampedPacket(clock, log, 0, at=0.010))
    clock.run_until(1.0)
    assert log == [(0, pytest.approx(0.060))]


def test_the_arrival_clock_maps_kernel_stamps_and_refuses_implausible_ones() -> None:
    clocks = ArrivalClock()
    offset = clock_map().offset_ns / 1e9
    now = 1000.0
    log: list[tuple[int, float | None]] = []

    def packet(realtime: float) -> StampedPacket:
        return StampedPacket(Clock(), log, 0, at=realtime)

    assert clocks.arrived(packet(now + offset - 0.0003), now) == pytest.approx(now - 0.0003)
    assert clocks.arrived(packet(0.0), now) == now  # no stamp: the read time stands
    assert clocks.arrived(packet(now + offset - 2 * STALE_STAMP_S), now) == now  # clock stepped
    assert clocks.arrived(packet(now + offset + 0.01), now) == now  # from the future
    assert (clocks.stamped, clocks.unstamped) == (1, 3)


def test_the_wake_up_lead_follows_the_median_latency_not_its_tail_and_is_capped() -> None:
    lead = WakeLead()
    for i in range(2000):
        lead.observe(0.05e-3 if i % 10 else 5e-3)  # 50 µs, one wake in ten 5 ms late
    assert lead.wake_s == pytest.approx(0.05e-3, abs=2 * WakeLead.STEP_S)
    for _ in range(2000):
        lead.observe_verdict(0.07e-3)
    assert lead.s == pytest.approx(0.12e-3, abs=4 * WakeLead.STEP_S)
    for _ in range(2000):
        lead.observe(10e-3)
    assert lead.s == WakeLead.MAX_S


def test_a_led_timer_releases_at_most_the_lead_early() -> None:
    """A line that learned a 0.1 ms lead arms 0.1 ms early: on a loop that wakes on time (this
    fake one), the packet leaves that early; never more than the lead plus `EARLY_S`."""
    clock = Clock()
    log: list[tuple[int, float | None]] = []
    lead = WakeLead()
    lead.wake_s = 0.1e-3
    line = Line(cast(asyncio.AbstractEventLoop, clock), config(delay_s=0.05), lead=lead)
    line.on_packet(Packet(clock, log, 0))
    clock.run_until(1.0)
    [(_, released)] = log
    assert released is not None
    assert 0.05 - WakeLead.MAX_S - EARLY_S <= released < 0.05

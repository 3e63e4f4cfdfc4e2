"""The delay line counts its own late releases and reports them on its control channel.

Why: a delay line that releases a packet after its due time adds delay the scenario did not ask
for; only the line knows when each packet was due, so it must count it. The counting is checked
on a fake clock (exact times, no sleeping), the `stats` exchange on the control logic and on a
real helper process, and the columns a call's row gets from the figures.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import cast

import pytest

from simnet.doctor import _realtime_check
from simnet.net.impair.nfqueue import _next_lines
from simnet.net.impair.nfqueue_helper import Line
from simnet.net.impair.pressure import late_columns
from simnet.net.impair.shaping import LATE_S, Lateness, decode_stats, encode_stats
from simnet.present.network import late_status
from simnet.results.schema import EmulatorFigures
from simnet.run.link import late_json
from tests.unit.delay_line_model import (
    Clock,
    Packet,
    StampedPacket,
    config,
    control_with,
    running_helper,
)
from tests.unit.rows import result_row


def test_a_held_packet_released_by_a_late_timer_counts_as_late_with_its_lateness() -> None:
    clock = Clock()
    log: list[tuple[int, float | None]] = []
    line = Line(cast(asyncio.AbstractEventLoop, clock), config(delay_s=0.04))
    line.on_packet(Packet(clock, log, 0))  # due at 40 ms
    clock.now = 0.001
    line.on_packet(Packet(clock, log, 1))  # due at 41 ms
    [timer] = [t for t in clock.timers if not t.cancelled]
    clock.timers.remove(timer)
    clock.now = 0.0415  # the loop woke 1.5 ms late: both leave now, the first 1.5 ms late
    timer.callback()
    assert [i for i, _ in log] == [0, 1]
    taken = line.take_lateness()
    assert (taken.name, taken.released, taken.late) == ("x.up", 2, 1)
    assert taken.late_max_s == pytest.approx(0.0015)
    assert line.take_lateness() == Lateness("x.up")  # reset on read
    assert line.late_total == 1  # the helper's own total (its exit report) is kept


def test_a_packet_read_after_its_due_time_counts_as_late_when_it_leaves_at_once() -> None:
    """Queued at 10 ms on a 1 ms line, read at 13 ms (the helper did not run): it leaves when
    read, 2 ms after its due time."""
    clock = Clock()
    log: list[tuple[int, float | None]] = []
    line = Line(
        cast(asyncio.AbstractEventLoop, clock),
        config(delay_s=0.001),
        arrival=lambda p: cast(StampedPacket, p).at,
    )
    clock.run_until(0.013)
    line.on_packet(StampedPacket(clock, log, 0, at=0.010))
    assert log == [(0, 0.013)]
    taken = line.take_lateness()
    assert (taken.released, taken.late) == (1, 1)
    assert taken.late_max_s == pytest.approx(0.002)


def test_punctual_releases_and_drops_are_not_late() -> None:
    clock = Clock()
    log: list[tuple[int, float | None]] = []
    line = Line(cast(asyncio.AbstractEventLoop, clock), config(delay_s=0.02, loss=0.5, seed=3))
    for i in range(200):
        clock.run_until(i * 0.002)
        line.on_packet(Packet(clock, log, i))
    clock.run_until(1.0)
    released = sum(1 for _, t in log if t is not None)
    taken = line.take_lateness()
    assert 0 < released < 200 and taken.released == released
    assert taken.late == 0 and taken.late_max_s < LATE_S


def test_the_control_channel_answers_stats_with_one_json_line_per_request() -> None:
    up, down = config(delay_s=0.01), config(name="x.down", queue=1, delay_s=0.02)
    control, _ = control_with(down, up)
    control.lines[0].period.add(0.003)
    control.lines[0].period.add(0.0)
    (answer,) = control.feed(b"stats\n")
    assert "\n" not in answer
    stats = decode_stats(answer)
    assert [(s.name, s.released, s.late) for s in stats] == [("x.up", 2, 1), ("x.down", 0, 0)]
    assert stats[0].late_max_s == pytest.approx(0.003)
    assert [s.released for s in decode_stats(control.feed(b"stats\n")[0])] == [0, 0]
    with pytest.raises(ValueError, match="not a stats answer"):
        decode_stats("ok")


def test_a_running_helper_answers_stats_on_its_pipe(tmp_path: Path) -> None:
    """The real process and the owner's reader, with no queue bound (no kernel needed)."""
    with running_helper(tmp_path) as (proc, helper):
        assert proc.stdin is not None
        proc.stdin.write(b"stats\n")
        proc.stdin.flush()
        [answer] = _next_lines([helper], 30, "counted")
        assert json.loads(answer) == {"stats": []}
    assert proc.returncode == 0


def test_a_rows_late_columns_sum_and_max_over_the_lines() -> None:
    lines = [Lateness("a.up", 100, 2, 0.0042), Lateness("b.down", 50, 1, 0.0071)]
    columns = late_columns(lines)
    assert columns == {
        "link_released_packets": 150,
        "link_late_packets": 3,
        "link_late_max_ms": 7.1,
        "emulator_late": True,
    }
    assert late_columns([Lateness("a.up")])["link_late_max_ms"] is None
    assert late_columns([Lateness("a.up", 10, 0, 0.0002)])["emulator_late"] is False
    assert late_columns(None) == {}  # not read: no columns, rather than a false "punctual"


def test_a_row_stores_the_late_columns_only_when_they_were_read() -> None:
    base = {
        "emulator_packets": 10,
        "emulator_peak_pps": 5,
        "emulator_dropped": 0,
        "emulator_limited": False,
    }
    read = result_row(emulator=EmulatorFigures.model_validate({**base, **late_columns([])}))
    assert read["link_late_packets"] == 0 and read["link_late_max_ms"] is None
    assert read["emulator_late"] is False
    unread = result_row(emulator=EmulatorFigures.model_validate(base))
    assert "link_late_packets" not in unread and "emulator_late" not in unread


def test_periods_add_up() -> None:
    first, second = Lateness("a.up", 10, 1, 0.002), Lateness("a.up", 5, 2, 0.0015)
    assert first.then(second) == Lateness("a.up", 15, 3, 0.002)
    assert decode_stats(encode_stats([first])) == [first]


def test_probe_link_and_up_show_each_lines_late_releases() -> None:
    lines = [Lateness("alice.up", 1862, 2, 0.001715), Lateness("bob.down", 0, 0, 0.0)]
    assert [late_json(line) for line in lines] == [
        {"link": "alice", "direction": "up", "released": 1862, "late": 2, "late_max_ms": 1.715},
        {"link": "bob", "direction": "down", "released": 0, "late": 0, "late_max_ms": None},
    ]
    status = late_status(lines).plain
    assert "alice.up 2 of 1862 (worst 1.7 ms)" in status and "bob.down 0 of 0" in status


def test_the_doctor_says_whether_delay_lines_get_real_time_priority(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIMNET_LINK_RT_PRIORITY", "0")
    check = _realtime_check()
    assert check.ok and "off" in check.detail and not check.required

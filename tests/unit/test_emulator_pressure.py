"""Reading the kernel's NFQUEUE counters into a call's emulator columns (pure parts)."""

from __future__ import annotations

import pytest

from simnet.net.impair.pressure import LIMIT_ENV, Pressure, QueueCounters, parse_queue_table

# net/netfilter/nfnetlink_queue.c seq_show: queue portid held mode range qdrop udrop seq 1
TABLE = """\
    0  12345     3 2 65531     0     0     1500  1
    1  12345     0 2 65531     4     1     2500  1
"""


def test_the_queue_table_gives_packets_and_kernel_drops_per_queue() -> None:
    assert parse_queue_table(TABLE) == {
        0: QueueCounters(queued=1500, dropped=0),
        1: QueueCounters(queued=2500, dropped=5),
    }
    assert parse_queue_table("") == {}


def counters(**by_queue: tuple[int, int]) -> dict[tuple[str, int], QueueCounters]:
    return {("ns", int(q[1:])): QueueCounters(*v) for q, v in by_queue.items()}


def test_peak_rate_is_the_busiest_links_both_directions_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LIMIT_ENV, "5000")
    p = Pressure()
    p.add(counters(q0=(0, 0), q1=(0, 0), q2=(0, 0)), 10.0)
    p.add(counters(q0=(100, 0), q1=(100, 0), q2=(300, 0)), 10.1)  # link 0: 2000/s, link 1: 3000/s
    p.add(counters(q0=(200, 0), q1=(400, 0), q2=(300, 0)), 10.2)  # link 0: 4000/s
    assert p.peak_pps == pytest.approx(4000)
    assert p.columns() == {
        "emulator_packets": 900,
        "emulator_peak_pps": 4000,
        "emulator_dropped": 0,
        "emulator_limited": False,
    }
    p.add(counters(q0=(1000, 0), q1=(400, 0), q2=(300, 0)), 10.3)  # link 0: 8000/s
    assert p.columns()["emulator_limited"] is True


def test_a_kernel_drop_marks_the_call_whatever_the_rate() -> None:
    p = Pressure()
    p.add(counters(q0=(0, 2)), 1.0)
    p.add(counters(q0=(10, 3)), 2.0)
    assert p.columns()["emulator_dropped"] == 1 and p.columns()["emulator_limited"] is True


def test_no_queue_no_columns() -> None:
    p = Pressure()
    p.add({}, 1.0)
    assert p.columns() == {}

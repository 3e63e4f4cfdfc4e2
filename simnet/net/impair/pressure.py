"""Was the userspace link emulator the bottleneck of a call? The kernel's own NFQUEUE counters say.

The delay line's ceiling is measured (`benchmarks/impairment_fidelity.py`): one helper adds
about 0.1 ms (median) up to 20-40k packets/s; from about 40k its p99 reaches a millisecond, and
at 60-80k its median does and packets are dropped (figures vary between sessions: README).
So during a call simnet samples, in every namespace of the network,
`/proc/net/netfilter/nfnetlink_queue`: per queue the packets queued so far
(`id_sequence`) and the packets the kernel dropped because the helper did not read its socket
fast enough (`user_dropped`) or its kernel queue, a backstop far above any line's own bound, was
full (`queue_dropped`). Configured loss and the configured `queue_packets` bound are applied by
the helper itself, by verdict, so any kernel drop is the emulator's doing.

A helper serves both directions of one link (queues 2i and 2i+1, `rules.LinkTarget.queue`),
so packet rates are summed per link, and a call's figures are its busiest link's: the peak rate
over `SAMPLE_S` windows, and the kernel drops. `emulator_limited` marks a row whose result the
emulator may have shaped: a kernel drop, or a peak above `SIMNET_EMULATOR_LIMIT_PPS` (default
40k packets/s, where this machine's p99 reaches a millisecond).

The counters are the kernel's, read from this process (the reading thread enters each namespace
in turn: `/proc/thread-self/net` is the thread's namespace), so no helper is asked anything.

Punctuality is the helpers' own figure: each delay line knows when it released each packet and
when it was due (`nfqueue_helper`). Given the run, `watched` asks its helpers at the start (which
resets their counters) and at the end of the block, so the call's figures are those of its own
packets: packets released by every line of the network (`link_released_packets`), those
released more than 1 ms after their due time (`link_late_packets`), the worst lateness
(`link_late_max_ms`), and `emulator_late` when any packet was late: then the delays the call
saw were longer than the scenario's by up to that much.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field

from simnet import settings
from simnet.errors import SimnetError
from simnet.net import netns
from simnet.net.impair.nfqueue import lateness
from simnet.net.impair.shaping import Lateness
from simnet.net.registry import Run

QUEUE_TABLE = "/proc/thread-self/net/netfilter/nfnetlink_queue"
SAMPLE_S = 0.25
LIMIT_ENV = settings.LIMIT_ENV
DEFAULT_LIMIT_PPS = settings.DEFAULT_LIMIT_PPS


@dataclass(frozen=True)
class QueueCounters:
    queued: int  # packets handed to the queue since it was bound (id_sequence)
    dropped: int  # queue full + netlink socket overrun (queue_dropped + user_dropped)


def parse_queue_table(text: str) -> dict[int, QueueCounters]:
    """Rows of nfnetlink_queue: queue, portid, held, copy mode, copy range, queue_dropped,
    user_dropped, id_sequence, 1 (net/netfilter/nfnetlink_queue.c, seq_show)."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        number, queue_dropped, user_dropped, sequence = (int(fields[i]) for i in (0, 5, 6, 7))
        out[number] = QueueCounters(sequence, queue_dropped + user_dropped)
    return out


def read_counters(namespaces: Iterable[str]) -> dict[tuple[str, int], QueueCounters]:
    """Every bound queue's counters in `namespaces`, keyed by (namespace, queue number)."""
    out: dict[tuple[str, int], QueueCounters] = {}
    for ns in namespaces:
        with netns.entered(ns):
            try:
                with open(QUEUE_TABLE) as table:
                    text = table.read()
            except FileNotFoundError:  # nfnetlink_queue not loaded: no queue anywhere
                text = ""
        for number, counters in parse_queue_table(text).items():
            out[(ns, number)] = counters
    return out


def limit_pps() -> float:
    return float(settings.emulator_limit_pps())


@dataclass
class Pressure:
    """Accumulates samples: the peak packet rate per link and the kernel's drops."""

    first: dict[tuple[str, int], QueueCounters] = field(default_factory=dict)
    last: dict[tuple[str, int], QueueCounters] = field(default_factory=dict)
    last_t: float = 0.0
    peak_pps: float = 0.0
    late: list[Lateness] | None = None  # the delay lines' releases during the block, if read

    def add(self, counters: Mapping[tuple[str, int], QueueCounters], t: float) -> None:
        if not self.first:
            self.first = dict(counters)
        elif t > self.last_t:
            per_link: dict[int, int] = {}
            for key, now in counters.items():
                before = self.last.get(key)
                if before is not None:
                    link = key[1] // 2
                    per_link[link] = per_link.get(link, 0) + now.queued - before.queued
            rate = max(per_link.values(), default=0) / (t - self.last_t)
            self.peak_pps = max(self.peak_pps, rate)
        self.last, self.last_t = dict(counters), t

    def columns(self) -> dict[str, int | float | bool | None]:
        if not self.first:
            return {}
        common = [(self.first[key], now) for key, now in self.last.items() if key in self.first]
        packets = sum(now.queued - then.queued for then, now in common)
        dropped = sum(now.dropped - then.dropped for then, now in common)
        return {
            "emulator_packets": packets,
            "emulator_peak_pps": round(self.peak_pps),
            "emulator_dropped": dropped,
            "emulator_limited": dropped > 0 or self.peak_pps > limit_pps(),
            **late_columns(self.late),
        }


def late_columns(late: list[Lateness] | None) -> dict[str, int | float | bool | None]:
    """The row's punctuality columns from the delay lines' figures (none if not read)."""
    if late is None:
        return {}
    released = sum(line.released for line in late)
    late_packets = sum(line.late for line in late)
    worst = max((line.late_max_s for line in late if line.released), default=None)
    return {
        "link_released_packets": released,
        "link_late_packets": late_packets,
        "link_late_max_ms": None if worst is None else round(worst * 1e3, 3),
        "emulator_late": late_packets > 0,
    }


def _lateness(run: Run | None) -> list[Lateness] | None:
    """The delay lines' figures since the last read; None when they cannot be read (a helper
    that died: its link drops everything, which the call's own result shows)."""
    if run is None:
        return None
    try:
        return lateness(run)
    except SimnetError:
        return None


@contextlib.asynccontextmanager
async def watched(
    namespaces: list[str], run: Run | None = None, sample_s: float = SAMPLE_S
) -> AsyncIterator[Pressure]:
    """Sample the queues of `namespaces` every `sample_s` while the block runs (and once at each
    end); the yielded `Pressure` has the figures afterwards. Without queues it costs one read.
    With `run`, its delay lines' punctuality over the block is read too (`Pressure.late`)."""
    pressure = Pressure()

    async def sample() -> None:
        counters = await asyncio.to_thread(read_counters, namespaces)
        pressure.add(counters, time.monotonic())

    await sample()
    if not pressure.first:  # no delay line in this network
        yield pressure
        return

    async def keep_sampling() -> None:
        while True:
            await asyncio.sleep(sample_s)
            await sample()

    started = await asyncio.to_thread(_lateness, run)  # resets the lines' counters
    task = asyncio.ensure_future(keep_sampling())
    try:
        yield pressure
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sample()
        ended = await asyncio.to_thread(_lateness, run)
        pressure.late = ended if started is not None else None

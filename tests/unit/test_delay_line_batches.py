"""A pile of held packets leaves the delay line by one batch verdict, and only where that is safe.

Why: without `reorder`, packets queued behind a long-delayed one share its release time; one
verdict each let the last of k leave k - 1 verdicts late, an error of the emulator and not of
the link it emulates. NFQUEUE's batch verdict releases every held packet of a queue up to an
id, so it must only be given where the line means to release all of them: checked here against
a model of the kernel's queue (`KernelQueue`: ids in the order queued, a batch takes every held
packet up to its id), on a fake clock, through piles, reordering, changes between the two,
drops, two queues of one line and a failed send. The message's bytes are checked against the
kernel's layout; `tests/integration/test_impairments.py` shows a pile leaving together.
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import cast

import pytest

from simnet.net.impair.nfq_batch import MESSAGE_LEN, verdict_batch_message
from simnet.net.impair.nfqueue_helper import EARLY_S, Held, Line, WakeLead
from tests.unit.delay_line_model import Clock, config


def host(value: int, size: int) -> bytes:
    return value.to_bytes(size, sys.byteorder)


def test_the_batch_verdict_message_has_the_kernels_layout() -> None:
    """nlmsghdr (host order), nfgenmsg (res_id big-endian), one NFQA_VERDICT_HDR attribute
    holding {be32 verdict, be32 id} (include/uapi/linux/netfilter/nfnetlink_queue.h)."""
    message = verdict_batch_message(queue=5, packet_id=0x01020304)
    assert len(message) == MESSAGE_LEN == 32
    assert message == b"".join(
        (
            host(32, 4),  # nlmsg_len
            host(3 << 8 | 3, 2),  # NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_VERDICT_BATCH
            host(1, 2),  # NLM_F_REQUEST, no ACK
            host(0, 4) + host(0, 4),  # sequence, port id
            bytes([0, 0]) + (5).to_bytes(2, "big"),  # AF_UNSPEC, NFNETLINK_V0, queue 5
            host(12, 2) + host(2, 2),  # nla_len, NFQA_VERDICT_HDR
            (1).to_bytes(4, "big"),  # NF_ACCEPT
            bytes([1, 2, 3, 4]),  # the packet id, big-endian
        )
    )
    assert verdict_batch_message(0, 2**32 + 7)[-4:] == (7).to_bytes(4, "big")  # ids are u32
    with pytest.raises(ValueError, match="16-bit"):
        verdict_batch_message(65536, 1)


class KernelQueue:
    """One NFQUEUE as the kernel keeps it: held packet ids in the order queued (rising), a
    verdict per packet, or a batch verdict taking every held packet up to an id, in order."""

    def __init__(self, clock: Clock, name: str = "q") -> None:
        self.clock, self.name = clock, name
        self.held: list[int] = []
        self.next_id = 1
        self.released: dict[int, float] = {}
        self.dropped: set[int] = set()
        self.due: dict[int, float] = {}  # of each packet the line held (`WatchedLine.check`)
        self.batches: list[list[int]] = []
        self.fail = False  # the next batch's send fails (nothing released)

    def queue(self) -> QueuedPacket:
        packet = QueuedPacket(self, self.next_id)
        self.held.append(self.next_id)
        self.next_id += 1
        return packet

    def verdict(self, packet_id: int, accept: bool) -> None:
        assert packet_id in self.held, f"{self.name}: {packet_id} verdicted twice"
        self.held.remove(packet_id)
        if accept:
            self.released[packet_id] = self.clock.now
            due = self.due.get(packet_id, self.clock.now)
            assert self.clock.now >= due - EARLY_S, f"{self.name}: {packet_id} left early"
        else:
            self.dropped.add(packet_id)

    def accept_through(self, packet_id: int) -> None:
        if self.fail:
            self.fail = False
            raise OSError("ENOBUFS")
        taken = [i for i in self.held if i <= packet_id]
        assert taken, f"{self.name}: a batch through {packet_id} found nothing (ENOENT)"
        for i in taken:
            self.verdict(i, True)
        self.batches.append(taken)


class QueuedPacket:
    def __init__(self, kernel: KernelQueue, packet_id: int) -> None:
        self.kernel, self.id = kernel, packet_id

    def accept(self) -> None:
        self.kernel.verdict(self.id, True)

    def drop(self) -> None:
        self.kernel.verdict(self.id, False)


class WatchedLine(Line):
    """A Line whose every verdict is checked against the kernel's queues: it releases exactly
    the packets of its group (a batch that took one packet more would show here), and after
    each release and each arrival the kernel holds exactly what the line holds."""

    kernels: list[KernelQueue]

    def _give(self, group: list[Held]) -> None:
        packets = [cast(QueuedPacket, entry[2]) for entry in group]
        before = {kernel.name: list(kernel.held) for kernel in self.kernels}
        for packet in packets:
            assert packet.id in packet.kernel.held
        super()._give(group)
        for kernel in self.kernels:
            mine = {p.id for p in packets if p.kernel is kernel}
            assert kernel.held == [i for i in before[kernel.name] if i not in mine]

    def release(self) -> None:
        super().release()
        self.check()

    def check(self) -> None:
        held = [cast(QueuedPacket, entry[2]) for entry in [*self.fifo, *self.heap]]
        for entry, packet in zip([*self.fifo, *self.heap], held, strict=True):
            packet.kernel.due[packet.id] = entry[0]
        for kernel in self.kernels:
            assert sorted(p.id for p in held if p.kernel is kernel) == kernel.held


def watched(clock: Clock, *kernels: KernelQueue, **fields: object) -> WatchedLine:
    line = WatchedLine(cast(asyncio.AbstractEventLoop, clock), config(**fields))
    line.kernels = list(kernels)
    return line


def arrive(line: WatchedLine, kernel: KernelQueue, t: float) -> QueuedPacket:
    kernel.clock.run_until(t)
    packet = kernel.queue()
    line.on_packet(packet, kernel)
    line.check()
    return packet


def test_a_pile_behind_a_long_delay_leaves_by_one_batch_verdict() -> None:
    """One packet held 50 ms, then the delay drops to 1 ms: the five that follow are due when
    it is (FIFO), and all six leave at once, by one verdict through the last id."""
    clock = Clock()
    kernel = KernelQueue(clock)
    line = watched(clock, kernel, delay_s=0.05)
    arrive(line, kernel, 0.0)
    line.reconfigure(config(delay_s=0.001))
    for i in range(1, 6):
        arrive(line, kernel, i * 0.001)
    clock.run_until(1.0)
    assert kernel.batches == [[1, 2, 3, 4, 5, 6]]
    assert kernel.released == dict.fromkeys(range(1, 7), pytest.approx(0.05))
    assert (line.batches, line.batched) == (1, 6)
    taken = line.take_lateness()
    assert (taken.released, taken.late) == (6, 0)


def test_each_packet_of_a_batch_counts_its_own_lateness_at_the_batch() -> None:
    """The timer wakes 1.5 ms late: packets due at 40 and 41 ms leave together at 41.5 ms,
    1.5 and 0.5 ms late; only the first counts as late."""
    clock = Clock()
    kernel = KernelQueue(clock)
    line = watched(clock, kernel, delay_s=0.04)
    arrive(line, kernel, 0.0)
    arrive(line, kernel, 0.001)
    [timer] = [t for t in clock.timers if not t.cancelled]
    clock.timers.remove(timer)
    clock.now = 0.0415
    timer.callback()
    assert kernel.batches == [[1, 2]]
    taken = line.take_lateness()
    assert (taken.released, taken.late) == (2, 1)
    assert taken.late_max_s == pytest.approx(0.0015)
    assert line.late_sum_s == pytest.approx(0.0015 + 0.0005)


def test_a_packet_due_alone_gets_its_own_verdict() -> None:
    clock = Clock()
    kernel = KernelQueue(clock)
    line = watched(clock, kernel, delay_s=0.01)
    for i in range(5):
        arrive(line, kernel, i * 0.002)  # 2 ms apart on a 10 ms line: never two due at once
    clock.run_until(1.0)
    assert kernel.batches == [] and line.batches == 0
    assert kernel.released == {i + 1: pytest.approx(i * 0.002 + 0.01) for i in range(5)}


def test_a_reordering_line_gives_one_verdict_per_packet_even_to_a_pile() -> None:
    """A reordering line releases by release time, not by queue id: a batch through one id
    could take a packet due later. Six packets due at the same time leave one by one."""
    clock = Clock()
    kernel = KernelQueue(clock)
    line = watched(clock, kernel, delay_s=0.05, reorder=True)
    arrive(line, kernel, 0.0)
    line.reconfigure(config(delay_s=0.001, reorder=True))
    for _ in range(5):
        arrive(line, kernel, 0.049)  # due at 50 ms, with the first
    clock.run_until(1.0)
    assert kernel.batches == [] and line.batches == 0
    assert sorted(kernel.released) == list(range(1, 7))


def test_packets_held_while_the_line_reordered_are_not_batched_after_it_stops() -> None:
    """Held under reorder, packets 2 and 3 (due at 30 ms) are ahead of packet 1 (60 ms) in
    release order, which the FIFO keeps: a batch through 3 would release 1 at 30 ms. They get
    their own verdicts; what arrives after the change is batched again."""
    clock = Clock()
    kernel = KernelQueue(clock)
    line = watched(clock, kernel, delay_s=0.06, reorder=True)
    arrive(line, kernel, 0.0)  # due at 60 ms
    line.reconfigure(config(delay_s=0.02, reorder=True))
    arrive(line, kernel, 0.01)  # due at 30 ms
    arrive(line, kernel, 0.01)
    line.reconfigure(config(delay_s=0.001))  # FIFO: later packets wait for the 60 ms one
    for i in range(3):
        arrive(line, kernel, 0.02 + i * 0.001)
    clock.run_until(1.0)
    assert kernel.released[2] == kernel.released[3] == pytest.approx(0.03)
    assert kernel.released[1] == pytest.approx(0.06)
    assert kernel.batches == [[4, 5, 6]]
    assert [kernel.released[i] for i in (4, 5, 6)] == [pytest.approx(0.06)] * 3


def test_a_line_fed_by_two_queues_batches_each_run_of_one_queue() -> None:
    """A direction queued in two namespaces has two queues, each numbering its own packets:
    a pile mixing them leaves in FIFO order, one verdict per run of one queue's packets."""
    clock = Clock()
    a, b = KernelQueue(clock, "a"), KernelQueue(clock, "b")
    line = watched(clock, a, b, delay_s=0.05)
    arrive(line, a, 0.0)
    line.reconfigure(config(delay_s=0.001))
    for kernel in (a, a, b, b, b, a):
        arrive(line, kernel, 0.01)
    clock.run_until(1.0)
    assert a.batches == [[1, 2, 3]] and b.batches == [[1, 2, 3]]
    assert a.released[4] == pytest.approx(0.05) and not a.held and not b.held
    assert line.batches == 2  # then a's last packet alone, by its own verdict


def test_a_batch_that_cannot_be_sent_falls_back_to_one_verdict_each() -> None:
    clock = Clock()
    kernel = KernelQueue(clock)
    line = watched(clock, kernel, delay_s=0.05)
    arrive(line, kernel, 0.0)
    line.reconfigure(config(delay_s=0.001))
    arrive(line, kernel, 0.01)
    kernel.fail = True
    clock.run_until(1.0)
    assert kernel.batches == [] and line.batches == 0
    assert kernel.released == {1: pytest.approx(0.05), 2: pytest.approx(0.05)}


def test_the_lead_learns_one_verdict_cost_per_batch() -> None:
    """A batch is one system call: one observation of the verdict's cost, not one per packet."""
    clock = Clock()
    kernel = KernelQueue(clock)
    lead = WakeLead()
    line = WatchedLine(cast(asyncio.AbstractEventLoop, clock), config(delay_s=0.05), lead=lead)
    line.kernels = [kernel]
    sent = kernel.accept_through

    def slow_batch(packet_id: int) -> None:
        sent(packet_id)
        clock.now += 50e-6  # the kernel forwards the pile inside the call

    kernel.accept_through = slow_batch  # type: ignore[method-assign]
    arrive(line, kernel, 0.0)
    line.reconfigure(config(delay_s=0.001))
    for i in range(1, 8):
        arrive(line, kernel, i * 0.001)
    clock.run_until(1.0)
    assert kernel.batches == [list(range(1, 9))]
    assert lead.verdict_s == pytest.approx(WakeLead.STEP_S)  # one step towards 50 µs


@pytest.mark.parametrize("seed", range(8))
def test_batches_never_release_a_packet_the_line_still_holds(seed: int) -> None:
    """Random traffic on two queues through random changes (FIFO and reordering, jitter,
    loss, a small queue): every verdict leaves the kernel holding exactly what the line holds
    (`WatchedLine`), no packet leaves before its due time, every packet is released or dropped
    once, and piles were batched."""
    rng = random.Random(seed)
    clock = Clock()
    a, b = KernelQueue(clock, "a"), KernelQueue(clock, "b")
    line = watched(clock, a, b, delay_s=0.02, jitter_s=0.015, seed=seed)
    t = 0.0
    for i in range(1500):
        if i % 100 == 99:
            line.reconfigure(
                config(
                    delay_s=rng.choice((0.0, 0.005, 0.02, 0.06)),
                    jitter_s=rng.choice((0.0, 0.01, 0.03)),
                    reorder=rng.random() < 0.4,
                    loss=rng.choice((0.0, 0.05)),
                    queue_packets=rng.choice((1000, 8)),
                    seed=seed + i,
                )
            )
        t += rng.expovariate(1000) if rng.random() < 0.9 else 0.0  # ~1 ms apart, some bursts
        arrive(line, rng.choice((a, b)), t)
    clock.run_until(t + 1.0)
    line.check()
    for kernel in (a, b):
        assert not kernel.held
        assert len(kernel.released) + len(kernel.dropped) == kernel.next_id - 1
    assert line.batches > 0

"""The userspace delay line: one process per impaired link, holding its packets in NFQUEUE.

The kernel keeps each queued packet; this process only decides *when* (and for bursty loss,
*whether*) to let it go, by giving its verdict later. It is what simnet uses for delay, jitter
and Gilbert-Elliott loss where the kernel has no sch_netem (docs/kernel-notes.md#nfqueue-delay).

    python -m simnet.net.impair.nfqueue_helper [--netns NS] [--rt-priority N] --config JSON

`--config` is a JSON list of directions (`shaping.DirectionConfig`), each bound to its own queue
number in the namespaces where that direction's packets are queued (`bind_in`; a netlink socket
belongs to the namespace it was made in, so one helper serves both ends of its link). The
process prints `ready` on stdout once every queue is bound, so the builder installs the rules
that feed the queues only then (no packet is queued to nobody) and never sleeps to guess.
Without a listener the rules drop (fail closed, no `bypass`): a dead helper shows as a dead
link, never as a silently ideal one. On SIGTERM it writes its counters to stderr and exits; the
kernel drops whatever it still held.

Changes during a call: stdin is a control channel. Each line is a new configuration in the
`--config` format; the event loop reads it (never blocking: a reader callback like the queues')
and answers one line on stdout, `ok` once it is in force or `error <why>` if nothing changed
(`Control`). A direction of the line takes its new configuration between two packets, all
directions of one line at once. Its queue number and namespaces stay; a direction the helper
did not serve yet is bound first, so the caller can feed it once `ok` arrives. What a change
does to packets already held: each keeps the release time it was given (as a packet already
on a real link is not sped up or slowed down by a route change behind it); without `reorder`,
no packet after the change leaves before one queued before it, so a delay decrease lets the
new delay show only once the line has drained (`Line.reconfigure`). End of stdin (the owner
went away) only ends the control channel; the line shapes on until it is stopped.

Punctuality: the line knows when it released each packet and when it was due, so it counts per
direction the packets released and those released more than 1 ms after their due time, and the
worst lateness (`shaping.Lateness`). The control line `stats` is answered by one JSON line of
these figures since the previous `stats` (reset on read), so the owner reads a call's figures
at its end without stopping the helper (`nfqueue.lateness`).

Timing: each packet's release time counts from when the kernel queued it, not from when this
process read it: NFQUEUE hands over the packet's kernel timestamp (`get_timestamp()`: the skb's
receive stamp, CLOCK_REALTIME, taken as it entered this namespace from its veth, or the time it
was queued), which `ArrivalClock` maps to CLOCK_MONOTONIC. So the helper's own wake-up and read
latency (0.1-0.5 ms per packet on this machine kind) is
not added to the delay. The kernel stamps packets only while some socket asks for receive
stamps (a global switch); the helper keeps one such socket open for that. A packet without a
plausible stamp falls back to the read time (counted in the stats). The asyncio loop runs on
`select()` (microsecond timeouts) rather than epoll, whose millisecond rounding would release
every packet up to 1 ms late; timer slack is set to 1 µs.
Packets of one direction are kept in a FIFO (a heap when reordering is allowed) with a single
timer for its head, so a packet costs one append and at most one verdict. Each line bounds what
it holds to its `queue_packets` itself (a tail drop, as netem's `limit`), so that the bound can
change during a call; the kernel queue's own bound is only a backstop.

Piles: without `reorder` a packet's due time is at least the one ahead of it (`Shaper.due`),
so the packets that follow a long-delayed one share its due time (with 40 ± 10 ms uniform
jitter and a packet every 2 ms, ~2,570 of 3,000 packets do, in ~800 piles of 2-9). Given one
verdict each, the last of a pile of k left k - 1 verdicts late, each a system call in which the
kernel forwards the packet through the next namespaces plus this process's own work (7-9 µs a
packet in kernel receive stamps here, more when the machine is busy); a real link sends a pile
at wire speed. So a FIFO line releases each run of one queue's due packets by one batch
verdict (`nfq_batch`), whose packets all count their lateness at the moment it is sent: a pile
of 11 arrives within 0.014-0.03 ms instead of 0.058-0.105 ms (1-2 µs a packet: the kernel's
forwarding alone). In `benchmarks/delay_line_lateness.py` (that link, a quiet machine, 20 runs
each) the median of a run's worst lateness went from 0.45 to 0.375 ms and of its maximum delay
from 50.14 to 50.105 ms (50 configured): the pile's error was small, and a release more than
1 ms late (1 run in 20, 2 before) is a timer woken late, which no verdict shortens. A reordering
line keeps one verdict per packet: it releases by due time, not by queue id, and a batch
through one id takes every held packet of the queue below it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import heapq
import itertools
import os
import selectors
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

from simnet.net.impair.measure import SO_TIMESTAMPNS, clock_map
from simnet.net.impair.nfq_batch import BatchVerdict
from simnet.net.impair.shaping import (
    STATS_REQUEST,
    DirectionConfig,
    Lateness,
    Shaper,
    decode,
    encode_stats,
)
from simnet.net.netns import enter_for_good, entered

if TYPE_CHECKING:
    from netfilterqueue import NetfilterQueue

EARLY_S = 20e-6  # release packets due within this much: a timer cannot be more precise anyway
PR_SET_TIMERSLACK = 29
# The kernel queue's bound, fixed when a queue is bound: the model's largest `queue_packets`, so
# a change during a call can raise a line's own bound. It costs nothing until packets are held,
# and the line never holds more than its own bound; what waits unread in the netlink socket is
# bounded by the socket's buffer (the kernel drops when that is full).
KERNEL_QUEUE_PACKETS = 1_000_000
CONTROL_READ = 65536
# A kernel stamp further in the past than this is not an arrival time: a packet does not wait
# that long unread (the real-time clock was stepped, or the stamp is of another kind).
STALE_STAMP_S = 1.0


class Packet(Protocol):
    """What the helper needs of `netfilterqueue.Packet`."""

    def accept(self) -> None: ...
    def drop(self) -> None: ...


class StampedPacket(Packet, Protocol):
    def get_timestamp(self) -> float: ...


class QueuedPacket(Packet, Protocol):
    """A packet as its queue numbers it (ids rise in the order the kernel queued them)."""

    @property
    def id(self) -> int: ...


class Batch(Protocol):
    """One verdict for the packets of one bound queue (`nfq_batch.BatchVerdict`)."""

    def accept_through(self, packet_id: int) -> None: ...


class ArrivalClock:
    """When the kernel queued each packet, on the event loop's clock (CLOCK_MONOTONIC), from
    NFQUEUE's packet timestamp (CLOCK_REALTIME, microseconds) and the offset between the two
    clocks read once at start. Counts how late packets were read, and packets it could not
    place (no stamp, or an implausible one: then the read time stands)."""

    def __init__(self) -> None:
        self.offset_s = clock_map().offset_ns / 1e9
        self.stamped = 0
        self.unstamped = 0
        self.read_late_sum_s = 0.0
        self.read_late_max_s = 0.0

    def arrived(self, packet: StampedPacket, now: float) -> float:
        stamp = packet.get_timestamp()
        at = stamp - self.offset_s
        if stamp <= 0 or not now - STALE_STAMP_S <= at <= now + 0.001:
            self.unstamped += 1
            return now
        at = min(at, now)
        self.stamped += 1
        self.read_late_sum_s += now - at
        self.read_late_max_s = max(self.read_late_max_s, now - at)
        return at

    def stats(self) -> str:
        mean = self.read_late_sum_s / self.stamped * 1e3 if self.stamped else 0.0
        return (
            f"arrivals: {self.stamped} kernel-stamped, {self.unstamped} by read time; "
            f"read after arrival mean {mean:.3f} ms max {self.read_late_max_s * 1e3:.3f} ms"
        )


# release time, arrival order (ties never compare further), the packet, and the batch verdict of
# its queue (None: it is released by its own verdict)
Held = tuple[float, int, Packet, Batch | None]


class WakeLead:
    """How much earlier than a packet's due time its timer must fire, learned while the helper
    runs: the loop's wake-up latency for a timer (a `select()` timeout wakes this process
    0.1-0.15 ms late at the median on this machine kind, a virtual machine) plus the verdict
    itself (the kernel forwards and delivers the packets inside that system call: ~0.01-0.02 ms
    for one, ~0.005 ms more for each further packet of a batch; learned per packet, a batch's
    time divided by its packets, so a pile's first packet leaves when it is due rather than
    early by the rest of the batch). Each is a running median (every observation moves the
    estimate one step towards what it saw, so a rare long stall does not drag it), so the
    median verdict leaves when it is due.
    The price: a wake-up that comes sooner than usual releases its packets up to the lead (plus
    `EARLY_S`) before their due time, so the lead is capped at `MAX_S`: no packet leaves more
    than 0.32 ms early (measured: up to 0.12 ms)."""

    STEP_S = 2e-6
    MAX_S = 0.3e-3

    def __init__(self) -> None:
        self.wake_s = 0.0
        self.verdict_s = 0.0

    @property
    def s(self) -> float:
        return min(self.wake_s + self.verdict_s, self.MAX_S)

    def observe(self, late_s: float) -> None:
        self.wake_s = _step(self.wake_s, late_s, self.STEP_S)

    def observe_verdict(self, took_s: float) -> None:
        self.verdict_s = _step(self.verdict_s, took_s, self.STEP_S)


def _step(estimate: float, seen: float, step: float) -> float:
    if seen > estimate:
        return estimate + step
    if seen < estimate:
        return max(estimate - step, 0.0)
    return estimate


class Line:
    """One direction: decides each packet's release time and releases it on time, in order."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: DirectionConfig,
        arrival: Callable[[Packet], float] | None = None,
        lead: WakeLead | None = None,
    ) -> None:
        """`arrival(packet)` says when the kernel queued the packet (loop time); without it, a
        packet counts from when it is read. `lead` is shared by the lines of one loop."""
        self.loop = loop
        self.config = config
        self.arrival = arrival
        self.lead = WakeLead() if lead is None else lead
        self.armed_for = 0.0
        self.shaper = Shaper(config)
        self.fifo: deque[Held] = deque()
        self.heap: list[Held] = []
        self.order = itertools.count()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = float("inf")
        self.packets = 0
        self.dropped = 0
        self.overflowed = 0
        self.changes = 0
        self.late_max_s = 0.0
        self.late_sum_s = 0.0  # signed: a release before its due time counts negative
        self.period = Lateness(config.name)  # since the last `stats` answer (`take_lateness`)
        self.late_total = 0  # released more than `LATE_S` late since the start
        # Held packets up to this arrival order leave by their own verdicts: they were held
        # while the line reordered, so their queue ids need not rise along the FIFO.
        self.unbatched_through = -1
        self.batches = 0  # batch verdicts given, and the packets they released
        self.batched = 0

    def __len__(self) -> int:
        return len(self.heap) if self.config.reorder else len(self.fifo)

    def on_packet(self, packet: Packet, batch: Batch | None = None) -> None:
        """Take one packet read from a queue; `batch` gives one verdict to several packets of
        that queue (`QueuedPacket`s then), or None: each packet is released by its own."""
        now = self.loop.time()
        self.packets += 1
        if len(self) >= self.config.queue_packets:
            self.overflowed += 1  # a full queue drops before the shaper sees it, as netem's
            packet.drop()
            return
        due = self.shaper.due(now if self.arrival is None else self.arrival(packet))
        if due is None:
            self.dropped += 1
            packet.drop()
            return
        if due <= now + EARLY_S and not len(self):
            self._count(now - due)  # due already if the packet waited unread
            packet.accept()
            return
        entry = (due, next(self.order), packet, batch)
        if self.config.reorder:
            heapq.heappush(self.heap, entry)
        else:
            self.fifo.append(entry)
        if due < self.timer_at:
            self._arm(due)

    def reconfigure(self, config: DirectionConfig) -> None:
        """Shape the next packets by `config`; the packets held keep their release times.

        Without `reorder` in the new configuration, the held packets leave in the order of
        their release times and no later packet before the last of them (the shaper's FIFO
        reference point becomes the latest release time held, which also covers leaving a
        reordering configuration); with it, each later packet leaves when its own delay says.
        """
        if (config.queue, config.bind_in) != (self.config.queue, self.config.bind_in):
            raise ValueError(
                f"{self.config.name}: a change cannot move queue {self.config.queue} "
                f"in {self.config.bind_in} to queue {config.queue} in {config.bind_in}"
            )
        held = sorted(self.heap) if self.config.reorder else list(self.fifo)
        if self.config.reorder and held:  # in order of release time, not of arrival
            self.unbatched_through = max(entry[1] for entry in held)
        self.config = config
        self.shaper.reconfigure(config)
        self.changes += 1
        if config.reorder:
            self.fifo, self.heap = deque(), held  # a sorted list is a heap
        else:
            self.fifo, self.heap = deque(held), []
            if held:
                self.shaper.last_due = max(self.shaper.last_due, held[-1][0])

    def _head(self) -> float:
        if self.config.reorder:
            return self.heap[0][0] if self.heap else float("inf")
        return self.fifo[0][0] if self.fifo else float("inf")

    def _arm(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = when
        self.armed_for = when - self.lead.s
        self.timer = self.loop.call_at(self.armed_for, self.release)

    def release(self) -> None:
        """Release the held packets due by now (less the lead). Each verdict's packets count
        their lateness at the moment that verdict is sent; the verdict's cost is learned per
        packet (`WakeLead`), whether the verdict releases one packet or a pile."""
        self.timer = None
        self.timer_at = float("inf")
        now = self.loop.time()
        self.lead.observe(now - self.armed_for)
        while (head := self._head()) <= now + EARLY_S + self.lead.s:
            for group in self._take(now + EARLY_S + self.lead.s):
                for entry in group:
                    self._count(now - entry[0])
                self._give(group)
                after = self.loop.time()
                self.lead.observe_verdict((after - now) / len(group))
                now = after
        if head != float("inf"):
            self._arm(head)

    def _batchable(self, entry: Held) -> bool:
        return entry[3] is not None and entry[1] > self.unbatched_through

    def _take(self, until: float) -> list[list[Held]]:
        """The held packets to release now, in groups that each leave by one verdict: the
        heap's head alone (a reordering line releases in order of release time, not of queue
        id); or every FIFO packet due by `until`, each run of packets of one queue a group."""
        if self.config.reorder:
            return [[heapq.heappop(self.heap)]]
        groups: list[list[Held]] = []
        while self.fifo and self.fifo[0][0] <= until:
            entry = self.fifo.popleft()
            last = groups[-1][-1] if groups else None
            if (
                last is not None
                and last[3] is entry[3]
                and self._batchable(last)
                and self._batchable(entry)
            ):
                groups[-1].append(entry)
            else:
                groups.append([entry])
        return groups

    def _give(self, group: list[Held]) -> None:
        """Accept a group's packets, several of one queue by one batch verdict through the last
        one's id. That verdict releases exactly the group: the FIFO holds each queue's packets
        in the order they were read, which is their ids' order (packets held while the line
        reordered are never batched, `unbatched_through`); every packet of the queue read
        before the group has had its verdict (dropped or accepted when read, or released ahead
        of the group); and none read after it has an id up to the last one's."""
        batch = group[-1][3]
        if batch is not None and len(group) > 1:
            try:
                batch.accept_through(cast(QueuedPacket, group[-1][2]).id)
            except OSError:  # not sent, so nothing was released: one verdict each instead
                pass
            else:
                self.batches += 1
                self.batched += len(group)
                return
        for entry in group:
            entry[2].accept()

    def _count(self, late_s: float) -> None:
        """One release, `late_s` after its due time (negative: before it)."""
        self.late_sum_s += late_s
        self.late_max_s = max(self.late_max_s, late_s)
        before = self.period.late
        self.period.add(late_s)
        self.late_total += self.period.late - before

    def take_lateness(self) -> Lateness:
        """The releases since the previous call (or the start), and a fresh period."""
        taken, self.period = self.period, Lateness(self.config.name)
        return taken

    def stats(self) -> str:
        passed = self.packets - self.dropped - self.overflowed
        mean_late = self.late_sum_s / passed * 1e3 if passed else 0.0
        return (
            f"{self.config.name}: queue {self.config.queue} packets {self.packets} "
            f"dropped {self.dropped} overflowed {self.overflowed} held {len(self)} "
            f"changes {self.changes} batch verdicts {self.batches} for {self.batched} packets, "
            f"released after due mean {mean_late:.3f} ms "
            f"max {self.late_max_s * 1e3:.3f} ms, {self.late_total} over 1 ms late, "
            f"lead {self.lead.wake_s * 1e3:.3f} ms wake-up "
            f"+ {self.lead.verdict_s * 1e3:.3f} ms verdict"
        )


class Control:
    """The helper's side of its control channel, without the I/O: bytes read from stdin in,
    answers out (one per complete line). `bind` makes and binds the line of a direction the
    helper does not serve yet (it raises OSError if the kernel refuses). A `stats` line is
    answered by one JSON line (`shaping.encode_stats`): each direction's releases since the
    previous `stats` (`Line.take_lateness`), so the owner reads a period's figures without
    stopping the line."""

    def __init__(self, lines: dict[int, Line], bind: Callable[[DirectionConfig], Line]) -> None:
        self.lines = lines
        self.bind = bind
        self.pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        self.pending += chunk
        *complete, self.pending = self.pending.split(b"\n")
        return [self.apply(line.decode(errors="replace")) for line in complete if line.strip()]

    def apply(self, text: str) -> str:
        """Put one encoded configuration list in force, all of it or (on error) none of it;
        or answer a `stats` request."""
        if text.strip() == STATS_REQUEST:
            return encode_stats([self.lines[q].take_lateness() for q in sorted(self.lines)])
        try:
            configs = decode(text)
        except (ValueError, TypeError, KeyError) as exc:
            return f"error bad configuration: {exc}"
        queues = [c.queue for c in configs]
        if len(set(queues)) != len(queues):
            return f"error a queue is named twice: {queues}"
        for config in configs:
            line = self.lines.get(config.queue)
            if line is not None and line.config.bind_in != config.bind_in:
                return (
                    f"error queue {config.queue} is bound in {line.config.bind_in}, "
                    f"not {config.bind_in}"
                )
        for config in configs:  # new directions first: the only step that can fail
            if config.queue not in self.lines:
                try:
                    self.lines[config.queue] = self.bind(config)
                except OSError as exc:
                    return f"error cannot bind queue {config.queue}: {exc}"
        for config in configs:
            line = self.lines[config.queue]
            if line.config != config:
                line.reconfigure(config)
        return "ok"


def _bind(line: Line, ns: str | None) -> tuple[NetfilterQueue, BatchVerdict]:
    """A queue bound in namespace `ns` (a netlink socket stays in the namespace it was made in,
    so one process can serve the queues of both ends of its link), and the batch verdicts on
    its socket. Each queue numbers its own packets, so each has its own batches. The binding
    never gives a verdict of its own to a packet released by a batch: its `Packet` verdicts
    only when told to, and not when it is freed."""
    # an optional binding (`simnet doctor` checks it): importing this module must not need it
    from netfilterqueue import COPY_META, NetfilterQueue

    with entered(ns) if ns else contextlib.nullcontext():
        queue = NetfilterQueue()
        batch = BatchVerdict(queue.get_fd(), line.config.queue)

        def on_packet(packet: Packet) -> None:
            line.on_packet(packet, batch)

        # COPY_META: the verdict needs no payload; copying none keeps the socket light
        queue.bind(line.config.queue, on_packet, KERNEL_QUEUE_PACKETS, COPY_META, 0)
    return queue, batch


def _precise_timers() -> None:
    """Ask the kernel to wake us within a microsecond of the timeout, not the default 50 µs."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _realtime(priority: int) -> None:
    """Run SCHED_FIFO, so a busy machine (two aiortc peers on two cores) delays packets by what
    the scenario says and not by when the scheduler gets round to this process. Measured here
    with other runs loading both cores: worst timer lateness 0.4 ms instead of 3-8 ms. The
    kernel's RT throttling (95% of a core) bounds what an overloaded helper can take."""
    if priority <= 0:
        return
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        print(
            f"nfqueue_helper: no real-time priority ({exc}); timing will follow CPU load",
            file=sys.stderr,
        )


def _say(text: str) -> None:
    """One answer line on stdout; an owner that stopped listening is no reason to stop shaping."""
    with contextlib.suppress(OSError):
        os.write(sys.stdout.fileno(), f"{text}\n".encode())


def serve(configs: list[DirectionConfig], netns: str | None = None, rt_priority: int = 0) -> int:
    """Bind a queue per direction, say `ready`, and shape until SIGTERM/SIGINT, taking new
    configurations from stdin meanwhile."""
    if netns:
        enter_for_good(netns)
    _precise_timers()
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    asyncio.set_event_loop(loop)
    lines: dict[int, Line] = {}
    queues: list[tuple[NetfilterQueue, BatchVerdict]] = []

    arrivals = ArrivalClock()
    lead = WakeLead()
    # A socket asking for receive stamps turns the kernel's packet stamping on (for every
    # namespace: the switch is global); it is never read.
    stamping = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stamping.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def arrived(packet: Packet) -> float:
        return arrivals.arrived(cast(StampedPacket, packet), loop.time())

    def bind(config: DirectionConfig) -> Line:
        line = Line(loop, config, arrived, lead)
        for ns in config.bind_in or (None,):
            queue, batch = _bind(line, ns)
            loop.add_reader(queue.get_fd(), queue.run, False)
            queues.append((queue, batch))
        return line

    for config in configs:
        try:
            lines[config.queue] = bind(config)
        except OSError as exc:
            print(
                f"nfqueue_helper: cannot bind queue {config.queue} in {config.bind_in or 'own'} "
                f"namespace ({exc}); is another process bound to it, or is nfnetlink_queue "
                "missing?",
                file=sys.stderr,
            )
            return 3

    control = Control(lines, bind)
    stdin = sys.stdin.fileno() if sys.stdin is not None else -1

    def on_control() -> None:
        try:
            chunk = os.read(stdin, CONTROL_READ)
        except OSError:
            chunk = b""
        if not chunk:  # the owner closed its end: keep shaping as configured
            loop.remove_reader(stdin)
            return
        # A change applies to the packets that reach a queue after it: the ones the kernel
        # queued before are read first, under the configuration they arrived in (the loop may
        # hand this callback the control line before the queues' readers, and a packet read
        # after a switch to `reorder` without delay would leave at once, ahead of its pile).
        for queue, _ in queues:
            queue.run(False)
        for answer in control.feed(chunk):
            _say(answer)

    def stop() -> None:
        for line in lines.values():
            print(line.stats(), file=sys.stderr)
        print(arrivals.stats(), file=sys.stderr)
        sys.stderr.flush()
        loop.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    if stdin >= 0:
        loop.add_reader(stdin, on_control)
    gc.collect()
    gc.freeze()  # packets and timers make no cycles: a collection pause would only add delay
    gc.disable()
    # Real-time only from here: binding and the collection above are start-up work, which at
    # real-time priority would hold off the running lines of the other links on its core.
    _realtime(rt_priority)
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        for queue, batch in queues:
            queue.unbind()
            batch.close()
        stamping.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simnet.net.impair.nfqueue_helper")
    parser.add_argument("--netns", help="enter this namespace first (default: inherit)")
    parser.add_argument("--config", required=True, help="JSON list of directions")
    parser.add_argument(
        "--rt-priority", type=int, default=0, help="SCHED_FIFO priority (0: normal scheduling)"
    )
    args = parser.parse_args(argv)
    try:
        configs = decode(args.config)
    except (ValueError, TypeError, KeyError) as exc:
        print(f"nfqueue_helper: bad --config: {exc}", file=sys.stderr)
        return 2
    return serve(configs, args.netns, args.rt_priority)


if __name__ == "__main__":
    sys.exit(main())

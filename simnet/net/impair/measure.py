"""Measuring a link with real packets: one-way delay, loss, duplicates, order, and rate.

Probes are UDP datagrams carrying a sequence number. Both of their ends are stamped by the
kernel, not by this process, so that what a thread of ours was doing when a probe went out or
came in (holding the GIL, descheduled, busy with another socket) never counts as link delay:

* **receive**: `SO_TIMESTAMPNS`, the time the kernel stamped the datagram. That stamp is
  CLOCK_REALTIME; `clock_map()` converts it to CLOCK_MONOTONIC with the offset between the two
  clocks, read once (the narrowest of 200 bracketed readings; its error is `ClockMap.error_ns`,
  a few hundred ns here, the same for every namespace: clocks are not namespaced);
* **send**: `SO_TIMESTAMPING` with `SOF_TIMESTAMPING_TX_SCHED`, the time the packet entered the
  sending device's queue (before any qdisc of its own link, e.g. a rate limit's tbf), read back
  from the socket's error queue. The user-space stamp taken just before `sendmsg` is earlier by
  0.02 ms at the median and up to 1-2 ms when the thread loses the CPU or the GIL in between
  (three probe streams in one process, measured); it is kept only as a fallback.

Where the kernel would stamp the arrival matters: it stamps a datagram when it enters the
receiving namespace, which is *before* a delay line that holds it in that same namespace (the
receiving host's own downlink: NFQUEUE sits in its prerouting). So every probe is sent with
`SO_TXTIME` and a CLOCK_MONOTONIC transmit time (the send stamp itself; no qdisc here acts on
it): such a packet keeps that "delivery time" across veths and routers, and the kernel replaces
it with the real time only when it delivers the packet to the local socket
(`ip_local_deliver_finish`), i.e. after every hold on the path. Measured with 7 ms on a host's
downlink: 0.15 ms by a plain receive stamp, 7.7 ms with the transmit time (user space: 7.8).

Sockets are created in their namespaces (`netns.socket_in`) and used from threads of this
process, so no process is started per probe run. The integration tests,
`benchmarks/impairment_fidelity.py` and `simnet probe-link` use it.
"""

from __future__ import annotations

import functools
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from simnet.net import netns

HEADER = struct.Struct("!IQ")  # sequence number, user-space send time (ns, CLOCK_MONOTONIC)
UDP_IP_ETHERNET = 8 + 20 + 14  # bytes around a UDP payload on the wire, as rate_kbit counts them

# <asm-generic/socket.h>, <linux/net_tstamp.h>, <linux/errqueue.h>, <linux/in.h> (64-bit
# Linux): Python's socket module has none of them.
SO_TIMESTAMPNS = 35  # also the cmsg type of its stamp (struct timespec)
SO_TIMESTAMPING = 37  # also the cmsg type of a transmit stamp (struct scm_timestamping)
SO_TXTIME = 61  # also SCM_TXTIME
IP_RECVERR = 11  # the cmsg type of the sock_extended_err beside a transmit stamp
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_TX_SCHED = 1 << 8
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
TX_STAMP_FLAGS = (
    SOF_TIMESTAMPING_TX_SCHED
    | SOF_TIMESTAMPING_SOFTWARE
    | SOF_TIMESTAMPING_OPT_ID
    | SOF_TIMESTAMPING_OPT_TSONLY
)
CLOCK_MONOTONIC_ID = 1
TIMESPEC = struct.Struct("=qq")
EXTENDED_ERR = struct.Struct("=IBBBBII")  # errno, origin, type, code, pad, info, data (key)
SO_EE_ORIGIN_TIMESTAMPING = 4
ANCILLARY_BYTES = 256


@dataclass(frozen=True)
class ClockMap:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC, as read once. NTP slews both clocks alike, so the
    offset holds until someone steps the real-time clock (`error_ns` bounds the reading)."""

    offset_ns: int
    error_ns: int

    def monotonic_ns(self, realtime_ns: int) -> int:
        return realtime_ns - self.offset_ns


@functools.cache
def clock_map(readings: int = 200) -> ClockMap:
    """The offset from the narrowest of `readings` brackets (monotonic, real, monotonic): the
    real-time reading is within half that bracket of the bracket's middle."""
    best: tuple[int, int] | None = None
    for _ in range(readings):
        before = time.monotonic_ns()
        real = time.clock_gettime_ns(time.CLOCK_REALTIME)
        after = time.monotonic_ns()
        if best is None or after - before < best[0]:
            best = (after - before, real - (before + after) // 2)
    assert best is not None
    return ClockMap(offset_ns=best[1], error_ns=(best[0] + 1) // 2)


def kernel_receive_ns(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's receive stamp of a datagram (CLOCK_MONOTONIC ns), from recvmsg's ancillary
    data with SO_TIMESTAMPNS on; None if it is not there."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            sec, nsec = TIMESPEC.unpack_from(data)
            return clock_map().monotonic_ns(sec * 1_000_000_000 + nsec)
    return None


class StampedSocket:
    """A UDP socket in namespace `ns` whose datagrams the kernel stamps on their way in and out.

    `send` returns the user-space stamp at once; the kernel's stamp of that send arrives on the
    socket's error queue and is collected by `collect_sent` (called by `send` itself and by
    `sent_ns`), matched to the send by the kernel's per-socket counter (OPT_ID).
    """

    def __init__(self, ns: str, port: int | None = 0, buffer_bytes: int | None = None) -> None:
        self.sock = netns.socket_in(ns)
        try:
            if buffer_bytes:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_bytes)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.txtime = _try_setsockopt(
                self.sock, SO_TXTIME, struct.pack("=iI", CLOCK_MONOTONIC_ID, 0)
            )
            self.tx_stamps = _try_setsockopt(self.sock, SO_TIMESTAMPING, TX_STAMP_FLAGS)
            if port is not None:
                self.sock.bind(("0.0.0.0", port))
        except BaseException:
            self.sock.close()
            raise
        self.port = int(self.sock.getsockname()[1])
        # registered once: `send` checks the error queue after every datagram
        self._errors = select.poll()
        self._errors.register(self.sock, 0)  # no event asked for: POLLERR comes regardless
        self.user_sent: list[int] = []  # per send() call, CLOCK_MONOTONIC ns
        self._keyed: list[int] = []  # send index of each send the kernel accepted, by its key
        self._kernel_sent: dict[int, int] = {}  # send index -> kernel stamp
        self._returned: dict[int, int] = {}  # send index -> when sendmsg returned

    def send(self, data: bytes, address: tuple[str, int], stamp_ns: int | None = None) -> int:
        """Send one datagram (a full local queue drops it, as on a real host); its index."""
        now = time.monotonic_ns() if stamp_ns is None else stamp_ns
        index = len(self.user_sent)
        self.user_sent.append(now)
        ancillary = [(socket.SOL_SOCKET, SO_TXTIME, struct.pack("=Q", now))] if self.txtime else []
        try:
            self.sock.sendmsg([data], ancillary, 0, address)
        except OSError:
            return index
        self._returned[index] = time.monotonic_ns()
        self._keyed.append(index)
        self.collect_sent()
        return index

    def collect_sent(self, wait_s: float = 0.0) -> None:
        """Read the kernel's transmit stamps queued so far (waiting up to `wait_s` for more)."""
        if not self.tx_stamps:
            return
        deadline = time.monotonic() + wait_s
        while True:
            if not self._error_queued(0.0):
                left = deadline - time.monotonic()
                if left <= 0 or len(self._kernel_sent) >= len(self._keyed):
                    return
                self._error_queued(left)
                continue
            try:
                _, ancillary, _, _ = self.sock.recvmsg(
                    1, ANCILLARY_BYTES, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
                )
            except OSError:
                return
            stamped = _transmit_stamp(ancillary)
            if stamped is not None and stamped[0] < len(self._keyed):
                # the first stamp of a key is the send: a bridged packet keeps its socket and
                # is stamped again by each bridge it leaves (after a delay line held it there)
                self._kernel_sent.setdefault(self._keyed[stamped[0]], stamped[1])

    def _error_queued(self, wait_s: float) -> bool:
        """Whether the error queue holds something (a transmit stamp), waiting up to `wait_s`.

        Polled for POLLERR, which the kernel reports while that queue is not empty (`select`'s
        exception set never shows it without SO_SELECT_ERR_QUEUE). Not found by a blind
        MSG_DONTWAIT read: on a socket with a timeout, Python waits for incoming data before any
        read, so every send waited out the timeout (0.5 s per probe, 25 s of a 27 s test)."""
        return bool(self._errors.poll(max(0.0, wait_s) * 1000))

    def sent_ns(self) -> list[int]:
        """Per send, the kernel's stamp where it gave one during the send call, else the
        user-space one. A stamp after `sendmsg` returned means the packet was held on its way
        to the device: by a delay line in the sender's own OUTPUT hook (traffic between two
        members of one LAN is queued there), which is link delay and must count."""
        self.collect_sent(wait_s=0.2 if len(self._kernel_sent) < len(self._keyed) else 0.0)
        return [
            kernel if (kernel := self._in_call(i)) is not None else at
            for i, at in enumerate(self.user_sent)
        ]

    def _in_call(self, index: int) -> int | None:
        kernel = self._kernel_sent.get(index)
        return kernel if kernel is not None and kernel <= self._returned[index] else None

    @property
    def kernel_sent(self) -> int:
        """Sends stamped by the kernel during their send call."""
        return sum(self._in_call(i) is not None for i in self._kernel_sent)

    def receive(self, buffer: bytearray) -> tuple[int, tuple[str, int], int, int | None]:
        """One datagram into `buffer`: (size, sender, user-space stamp, kernel stamp or None)."""
        size, ancillary, _, address = self.sock.recvmsg_into([buffer], ANCILLARY_BYTES)
        user = time.monotonic_ns()
        return size, address, user, kernel_receive_ns(ancillary)

    def close(self) -> None:
        self.sock.close()


def _try_setsockopt(sock: socket.socket, option: int, value: int | bytes) -> bool:
    try:
        sock.setsockopt(socket.SOL_SOCKET, option, value)
    except OSError:
        return False  # an older kernel: the user-space stamps stand in
    return True


def _transmit_stamp(ancillary: list[tuple[int, int, bytes]]) -> tuple[int, int] | None:
    """(key, CLOCK_MONOTONIC ns) of one error-queue message carrying a transmit stamp."""
    key = stamp = None
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(data) >= TIMESPEC.size:
            sec, nsec = TIMESPEC.unpack_from(data)  # [0]: the software stamp
            if sec or nsec:
                stamp = clock_map().monotonic_ns(sec * 1_000_000_000 + nsec)
        elif level == socket.SOL_IP and kind == IP_RECVERR and len(data) >= EXTENDED_ERR.size:
            fields = EXTENDED_ERR.unpack_from(data)
            if fields[1] == SO_EE_ORIGIN_TIMESTAMPING:
                key = fields[6]
    return (key, stamp) if key is not None and stamp is not None else None


class Arrival(NamedTuple):
    seq: int
    sent_ns: int
    received_ns: int  # the kernel's stamp (the user-space one where the kernel gave none)
    wire_bytes: int  # UDP payload + UDP, IP and Ethernet headers: what `rate_kbit` counts
    user_received_ns: int  # when this process read it: for comparison only
    kernel: bool  # received_ns is the kernel's

    @property
    def delay_ms(self) -> float:
        return (self.received_ns - self.sent_ns) / 1e6


@dataclass
class Probes:
    """Outcome of one probe run: per sequence number, when it was sent and when it arrived.

    Stamps are the kernel's where it gave them: `kernel_sent` of the sends and `kernel_received`
    of the arrivals were (`all_kernel` says whether every one was); `user_sent_ns` and
    `user_arrivals` are this process's own stamps of the same packets, for comparison.
    """

    sent_ns: list[int]
    arrivals: list[tuple[int, int]] = field(default_factory=list)  # (seq, receive ns), in order
    user_sent_ns: list[int] = field(default_factory=list)
    user_arrivals: list[int] = field(default_factory=list)  # user-space receive ns, same order
    kernel_sent: int = 0
    kernel_received: int = 0

    @property
    def count(self) -> int:
        return len(self.sent_ns)

    @property
    def all_kernel(self) -> bool:
        return self.kernel_sent == self.count and self.kernel_received == len(self.arrivals)

    def delays_ms(self) -> list[float]:
        """One-way delay of each first arrival, in arrival order (kernel stamps)."""
        seen: set[int] = set()
        out = []
        for seq, at in self.arrivals:
            if seq not in seen:
                seen.add(seq)
                out.append((at - self.sent_ns[seq]) / 1e6)
        return out

    def user_delays_ms(self) -> list[float]:
        """The same delays from the user-space stamps taken around sendmsg and recvmsg."""
        seen: set[int] = set()
        out = []
        for (seq, _), at in zip(self.arrivals, self.user_arrivals, strict=True):
            if seq not in seen:
                seen.add(seq)
                out.append((at - self.user_sent_ns[seq]) / 1e6)
        return out

    @property
    def received(self) -> int:
        return len({seq for seq, _ in self.arrivals})

    @property
    def lost(self) -> int:
        return self.count - self.received

    @property
    def duplicates(self) -> int:
        return len(self.arrivals) - self.received

    def lost_sequence(self) -> list[bool]:
        got = {seq for seq, _ in self.arrivals}
        return [seq not in got for seq in range(self.count)]

    @property
    def reordered(self) -> int:
        """Arrivals with a lower sequence number than an earlier arrival."""
        highest = -1
        late = 0
        for seq, _ in self.arrivals:
            if seq < highest:
                late += 1
            highest = max(highest, seq)
        return late


class Receiver:
    """A UDP socket in `ns` that records every probe as the kernel stamped it, on its own
    thread (when that thread runs no longer matters: it only reads the stamps)."""

    def __init__(self, ns: str, port: int = 0) -> None:
        self.socket = StampedSocket(ns, port, buffer_bytes=8 << 20)
        self.socket.sock.settimeout(0.05)
        self.port = self.socket.port
        self.arrivals: list[Arrival] = []
        # distinct sequence numbers seen: what "everything arrived" is counted in, since a
        # duplicating link delivers more datagrams than were sent
        self.sequences: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        buf = bytearray(65536)
        while not self._stop.is_set():
            try:
                n, _, user, kernel = self.socket.receive(buf)
            except TimeoutError:
                continue
            except OSError:
                return
            if n >= HEADER.size:
                seq, sent = HEADER.unpack_from(buf)
                at = user if kernel is None else kernel
                wire = n + UDP_IP_ETHERNET
                self.arrivals.append(Arrival(seq, sent, at, wire, user, kernel is not None))
                self.sequences.add(seq)

    def wait_quiet(self, expected: int, quiet_s: float, limit_s: float) -> None:
        """Return once `expected` distinct datagrams arrived, or nothing arrived for `quiet_s`.

        Distinct: counting duplicates too returned while the last originals were still in
        flight on a duplicating link, and closing the socket then lost them."""
        deadline = time.monotonic() + limit_s
        last = (len(self.arrivals), time.monotonic())
        while time.monotonic() < deadline and len(self.sequences) < expected:
            time.sleep(0.005)
            if len(self.arrivals) != last[0]:
                last = (len(self.arrivals), time.monotonic())
            elif time.monotonic() - last[1] > quiet_s:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


def probe(
    src_ns: str,
    dst_ns: str,
    dst: str,
    count: int,
    interval_s: float,
    size: int = 64,
    settle_s: float = 1.0,
    on_sent: Callable[[int], None] | None = None,
) -> Probes:
    """Send `count` probes `interval_s` apart from `src_ns` to `dst` (an address in `dst_ns`).

    Returns after the last probe plus `settle_s` of silence (set it above the largest delay).
    `on_sent(seq)` runs after each send (from the calling thread), e.g. to change the link at a
    known point of the stream.
    """
    receiver = Receiver(dst_ns)
    sender = StampedSocket(src_ns, port=None, buffer_bytes=4 << 20)
    padding = bytes(max(0, size - HEADER.size))
    try:
        start = time.monotonic()
        for seq in range(count):
            pause = start + seq * interval_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            now = time.monotonic_ns()
            sender.send(HEADER.pack(seq, now) + padding, (dst, receiver.port), now)
            if on_sent is not None:
                on_sent(seq)
        receiver.wait_quiet(count, settle_s, settle_s + 60)
        sent = sender.sent_ns()
    finally:
        sender.close()
        receiver.close()
    arrivals = receiver.arrivals
    return Probes(
        sent,
        [(a.seq, a.received_ns) for a in arrivals],
        user_sent_ns=sender.user_sent,
        user_arrivals=[a.user_received_ns for a in arrivals],
        kernel_sent=sender.kernel_sent,
        kernel_received=sum(a.kernel for a in arrivals),
    )


def blast(
    src_ns: str, dst_ns: str, dst: str, rate_kbit: float, duration_s: float, size: int = 1200
) -> list[Arrival]:
    """Send UDP at `rate_kbit` (on-the-wire bits) for `duration_s`; what arrived, in order,
    each with the kernel's send stamp.

    Paced in 1 ms slots, so a link slower than `rate_kbit` queues and drops the excess and the
    receiver sees the link's rate.
    """
    receiver = Receiver(dst_ns)
    sender = StampedSocket(src_ns, port=None)
    sender.sock.setblocking(False)
    wire = size + UDP_IP_ETHERNET
    per_s = rate_kbit * 1000 / 8 / wire
    padding = bytes(size - HEADER.size)
    try:
        start = time.monotonic()
        seq = 0
        while (now := time.monotonic()) - start < duration_s:
            due = int((now - start) * per_s) + 1
            while seq < due:
                stamp = time.monotonic_ns()
                sender.send(HEADER.pack(seq, stamp) + padding, (dst, receiver.port), stamp)
                seq += 1
            time.sleep(0.001)
        receiver.wait_quiet(seq, 0.5, 30)
        sent = sender.sent_ns()
    finally:
        sender.close()
        receiver.close()
    return [a._replace(sent_ns=sent[a.seq]) for a in receiver.arrivals if a.seq < len(sent)]


def rate_kbit(arrivals: list[Arrival], skip: int = 20) -> float:
    """Receive rate over the arrivals after the first `skip` (past the token bucket's burst)."""
    window = arrivals[skip:]
    if len(window) < 2:
        raise ValueError("too few arrivals to measure a rate")
    span_s = (window[-1].received_ns - window[0].received_ns) / 1e9
    bits = sum(a.wire_bytes for a in window[1:]) * 8
    return bits / span_s / 1000

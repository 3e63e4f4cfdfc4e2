"""Measuring a link with real packets: one-way delay, loss, duplicates, order, and rate.

Probes are UDP datagrams carrying a sequence number and the sender's CLOCK_MONOTONIC time; all
namespaces share that clock, so the receiver's `time.monotonic_ns()` minus the sender's is the
exact one-way delay, including everything a real application would see (receive timestamps
taken by the kernel would miss a delay applied after them, e.g. on the receiving host's own
downlink). Sockets are created in their namespaces (`netns.socket_in`) and used from threads of
this process, so no process is started per probe run. The integration tests and
`benchmarks/impairment_fidelity.py` use it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from simnet.net import netns

PROMPT_SWITCH_S = 0.0002  # thread switch interval while measuring (Python's default: 5 ms)
HEADER = struct.Struct("!IQ")  # sequence number, send time (ns, CLOCK_MONOTONIC)
UDP_IP_ETHERNET = 8 + 20 + 14  # bytes around a UDP payload on the wire, as rate_kbit counts them


class Arrival(NamedTuple):
    seq: int
    sent_ns: int
    received_ns: int
    wire_bytes: int  # UDP payload + UDP, IP and Ethernet headers: what `rate_kbit` counts

    @property
    def delay_ms(self) -> float:
        return (self.received_ns - self.sent_ns) / 1e6


@dataclass
class Probes:
    """Outcome of one probe run: per sequence number, when it was sent and when it arrived."""

    sent_ns: list[int]
    arrivals: list[tuple[int, int]] = field(default_factory=list)  # (seq, receive ns), in order

    @property
    def count(self) -> int:
        return len(self.sent_ns)

    def delays_ms(self) -> list[float]:
        """One-way delay of each first arrival, in arrival order."""
        seen: set[int] = set()
        out = []
        for seq, at in self.arrivals:
            if seq not in seen:
                seen.add(seq)
                out.append((at - self.sent_ns[seq]) / 1e6)
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
    """A UDP socket in `ns` that timestamps every datagram as it is read, on its own thread."""

    def __init__(self, ns: str, port: int = 0) -> None:
        self.sock = netns.socket_in(ns)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("0.0.0.0", port))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.arrivals: list[Arrival] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        buf = bytearray(65536)
        while not self._stop.is_set():
            try:
                n = self.sock.recv_into(buf)
            except TimeoutError:
                continue
            except OSError:
                return
            at = time.monotonic_ns()
            if n >= HEADER.size:
                seq, sent = HEADER.unpack_from(buf)
                self.arrivals.append(Arrival(seq, sent, at, n + UDP_IP_ETHERNET))

    def wait_quiet(self, expected: int, quiet_s: float, limit_s: float) -> None:
        """Return once `expected` datagrams arrived, or nothing arrived for `quiet_s`."""
        deadline = time.monotonic() + limit_s
        last = (len(self.arrivals), time.monotonic())
        while time.monotonic() < deadline and len(self.arrivals) < expected:
            time.sleep(0.005)
            if len(self.arrivals) != last[0]:
                last = (len(self.arrivals), time.monotonic())
            elif time.monotonic() - last[1] > quiet_s:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


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
    sender = netns.socket_in(src_ns)
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    padding = bytes(max(0, size - HEADER.size))
    sent: list[int] = []
    try:
        start = time.monotonic()
        for seq in range(count):
            pause = start + seq * interval_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            now = time.monotonic_ns()
            sent.append(now)
            with contextlib.suppress(OSError):  # a full local queue drops, as on a real host
                sender.sendto(HEADER.pack(seq, now) + padding, (dst, receiver.port))
            if on_sent is not None:
                on_sent(seq)
        receiver.wait_quiet(count, settle_s, settle_s + 60)
    finally:
        sender.close()
        receiver.close()
    return Probes(sent, [(a.seq, a.received_ns) for a in receiver.arrivals])


def blast(
    src_ns: str, dst_ns: str, dst: str, rate_kbit: float, duration_s: float, size: int = 1200
) -> list[Arrival]:
    """Send UDP at `rate_kbit` (on-the-wire bits) for `duration_s`; what arrived, in order.

    Paced in 1 ms slots, so a link slower than `rate_kbit` queues and drops the excess and the
    receiver sees the link's rate.
    """
    receiver = Receiver(dst_ns)
    sender = netns.socket_in(src_ns)
    sender.setblocking(False)
    wire = size + UDP_IP_ETHERNET
    per_s = rate_kbit * 1000 / 8 / wire
    padding = bytes(size - HEADER.size)
    try:
        start = time.monotonic()
        seq = 0
        while (now := time.monotonic()) - start < duration_s:
            due = int((now - start) * per_s) + 1
            while seq < due:
                with contextlib.suppress(OSError):  # local queue full: dropped, as on a host
                    sender.sendto(
                        HEADER.pack(seq, time.monotonic_ns()) + padding, (dst, receiver.port)
                    )
                seq += 1
            time.sleep(0.001)
        receiver.wait_quiet(seq, 0.5, 30)
    finally:
        sender.close()
        receiver.close()
    return receiver.arrivals


def rate_kbit(arrivals: list[Arrival], skip: int = 20) -> float:
    """Receive rate over the arrivals after the first `skip` (past the token bucket's burst)."""
    window = arrivals[skip:]
    if len(window) < 2:
        raise ValueError("too few arrivals to measure a rate")
    span_s = (window[-1].received_ns - window[0].received_ns) / 1e9
    bits = sum(a.wire_bytes for a in window[1:]) * 8
    return bits / span_s / 1000


@contextlib.contextmanager
def prompt_receivers() -> Iterator[None]:
    """Let receiver threads take the GIL within 0.2 ms, not Python's 5 ms: a probe's arrival is
    stamped when its thread runs, so a busy sender thread would otherwise add milliseconds to
    the delays measured."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(PROMPT_SWITCH_S)
    try:
        yield
    finally:
        sys.setswitchinterval(old)

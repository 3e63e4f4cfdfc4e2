"""ICE "disconnected" and back, which aiortc does not report.

aiortc's iceConnectionState knows only new/checking/completed/failed/closed: a dead path shows
only when aioice's consent freshness gives up (6 unanswered checks 5 s apart, ~30 s) and then
the ICE connection is closed for good. A browser's (libwebrtc's) ICE agent instead marks the
connection "disconnected" once nothing has been received for 2.5 s, keeps checking, and goes
back to "connected" as soon as the path carries packets again. Users compare against that, so
the agent watches the aioice connection the same way:

* every packet the nominated pair's socket receives from the pair's remote address (data,
  STUN requests, answers to checks) counts as "heard";
* a connectivity check (a STUN binding request like aioice's consent check, never
  retransmitted) goes out on each nominated pair every `check_interval_s`, so an idle call
  still hears its peer regularly;
* `disconnected_after_s` without hearing anything makes the state "disconnected"; the next
  packet heard makes it "connected" again;
* each check's round trip (or its loss: no answer within `disconnected_after_s`) is
  reported, so a call's timeline shows what the path did over time (a delay raised, loss
  added) as the call itself saw it.

aioice's own consent freshness is untouched and still closes the connection after ~30 s without
an answer to its checks (RFC 7675's expiry): then aiortc reports "failed" and this monitor stops.
What it needs of aioice's internals (the nominated pairs, a hook on their sockets, a check
whose answer is awaited longer than aioice would) comes from `simnet.peer.aiortc.aioice_adapter`.

The round trips are stamped in user space (`time.monotonic()` before the check is sent and
when the answer reaches the hook), unlike simnet's probes (`simnet.net.impair.measure`), which
the kernel stamps. The kernel cannot help here: its receive stamp is taken when a packet enters
the receiving namespace, before the delay line of this host's own downlink holds it, and only
a sender that attaches a transmit time to each datagram (`SCM_TXTIME`) moves that stamp to
local delivery; the answers come from the other peer's aioice, whose `transport.sendto` attaches
nothing. So the figures include this agent's event-loop latency (tens of µs when idle, up to a
few ms while aiortc is busy): fine for what they are for (a path's RTT over time and its loss,
one check every 0.5 s), not an instrument's reading: use `simnet probe-link` for that.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from aioice.ice import CandidatePair, Connection

from simnet.peer.aiortc.aioice_adapter import (
    Unhook,
    hook_received,
    nominated_pairs,
    remote_password,
    send_check,
)

OnState = Callable[[str, float], None]  # ("disconnected" | "connected", monotonic time)
OnCheck = Callable[[float, float | None], None]  # (sent at, round trip in s or None: lost)


class LivenessMonitor:
    """Watches one aioice connection once ICE completed; call `stop()` when the call ends."""

    def __init__(
        self,
        connection: Connection,
        check_interval_s: float,
        disconnected_after_s: float,
        on_state: OnState,
        on_check: OnCheck | None = None,
    ) -> None:
        self._connection = connection
        self._interval = check_interval_s
        self._threshold = disconnected_after_s
        self._on_state = on_state
        self._on_check = on_check
        self._heard = time.monotonic()
        self.disconnected = False
        self._checks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None
        self._unhooks: list[Unhook] = []

    def start(self) -> None:
        for pair in nominated_pairs(self._connection):
            self._hook(pair)
        self._arm(self._heard + self._threshold)
        self._sender = asyncio.ensure_future(self._send_checks())

    def stop(self) -> None:
        for unhook in self._unhooks:
            unhook()
        self._unhooks.clear()
        if self._timer is not None:
            self._timer.cancel()
        for task in (self._sender, *self._checks):
            if task is not None:
                task.cancel()

    def _hook(self, pair: CandidatePair) -> None:
        """Count what the pair's socket receives from the pair's remote address: aioice keeps
        sending there, so packets from anywhere else (the peer behind a rebooted NAT, with a new
        mapping) do not mean the path works."""
        remote = tuple(pair.remote_addr)

        def received(addr: tuple[Any, ...]) -> None:
            if (addr[0], addr[1]) == remote:
                self.heard()

        self._unhooks.append(hook_received(pair, received))

    def heard(self) -> None:
        self._heard = now = time.monotonic()
        if self.disconnected:
            self.disconnected = False
            self._on_state("connected", now)

    def _arm(self, when: float) -> None:
        # monotonic and the loop's clock are both CLOCK_MONOTONIC on Linux
        self._timer = self._loop.call_at(when, self._expire)

    def _expire(self) -> None:
        """Runs when the threshold may have passed: only a silence that long disconnects; a
        packet heard meanwhile just moves the deadline (no timer work per packet)."""
        deadline = self._heard + self._threshold
        if time.monotonic() >= deadline and not self.disconnected:
            self.disconnected = True
            self._on_state("disconnected", deadline)
        self._arm(max(deadline, time.monotonic() + self._threshold / 10))

    async def _send_checks(self) -> None:
        password = remote_password(self._connection)
        if password is None:
            return
        while True:
            # jittered like aioice's consent checks, so both peers' checks do not line up
            await asyncio.sleep(self._interval * (0.8 + 0.4 * random.random()))
            for pair in nominated_pairs(self._connection):
                task = asyncio.ensure_future(self._check(pair, password.encode("utf8")))
                self._checks.add(task)
                task.add_done_callback(self._checks.discard)

    async def _check(self, pair: CandidatePair, key: bytes) -> None:
        """One check, waited for as long as a disconnection takes to declare: aioice's own
        transactions give up after 0.5 s, which would count every check of a satellite path
        (600 ms RTT) as lost."""
        sent = time.monotonic()
        answered = await send_check(self._connection, pair, key, self._threshold)
        rtt = None if answered is None else answered - sent  # (the hook counted it as heard)
        if self._on_check is not None:
            self._on_check(sent, rtt)

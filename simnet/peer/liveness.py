"""ICE "disconnected" and back, which aiortc does not report.

aiortc's iceConnectionState knows only new/checking/completed/failed/closed: a dead path shows
only when aioice's consent freshness gives up (6 unanswered checks 5 s apart, ~30 s) and then
the ICE connection is closed for good. A browser's (libwebrtc's) ICE agent instead marks the
connection "disconnected" once nothing has been received for 2.5 s, keeps checking, and goes
back to "connected" as soon as the path carries packets again. Users compare against that, so
the agent watches the aioice connection the same way:

* every packet the nominated pair delivers (data, or a STUN request from the remote peer) and
  every answered check counts as "heard";
* a connectivity check (a STUN binding request like aioice's consent check, no
  retransmission) goes out on each nominated pair every `check_interval_s`, so an idle call
  still hears its peer regularly;
* `disconnected_after_s` without hearing anything makes the state "disconnected"; the next
  packet heard makes it "connected" again.

aioice's own consent freshness is untouched and still closes the connection after ~30 s without
an answer to its checks (RFC 7675's expiry): then aiortc reports "failed" and this monitor stops.
All of it hooks the aioice `Connection` of one call through its `data_received` and
`request_received` callbacks (per instance, so other connections are unaffected).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

from aioice import stun
from aioice.ice import CandidatePair, Connection

OnState = Callable[[str, float], None]  # ("disconnected" | "connected", monotonic time)


class LivenessMonitor:
    """Watches one aioice connection once ICE completed; call `stop()` when the call ends."""

    def __init__(
        self,
        connection: Connection,
        check_interval_s: float,
        disconnected_after_s: float,
        on_state: OnState,
    ) -> None:
        self._connection = connection
        self._interval = check_interval_s
        self._threshold = disconnected_after_s
        self._on_state = on_state
        self._heard = time.monotonic()
        self.disconnected = False
        self._checks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None
        self._restore: dict[str, Any] = {}

    def start(self) -> None:
        connection = self._connection
        for name in ("data_received", "request_received"):
            original = getattr(connection, name)
            self._restore[name] = original
            setattr(connection, name, self._hearing(original))
        self._arm(self._heard + self._threshold)
        self._sender = asyncio.ensure_future(self._send_checks())

    def stop(self) -> None:
        for name in self._restore:
            with contextlib.suppress(AttributeError):
                delattr(self._connection, name)  # back to the class's method
        self._restore.clear()
        if self._timer is not None:
            self._timer.cancel()
        for task in (self._sender, *self._checks):
            if task is not None:
                task.cancel()

    def heard(self) -> None:
        self._heard = now = time.monotonic()
        if self.disconnected:
            self.disconnected = False
            self._on_state("connected", now)

    def _hearing(self, original: Callable[..., None]) -> Callable[..., None]:
        def hook(*args: Any) -> None:
            self.heard()
            original(*args)

        return hook

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
        password = self._connection.remote_password
        if password is None:
            return
        while True:
            # jittered like aioice's consent checks, so both peers' checks do not line up
            await asyncio.sleep(self._interval * (0.8 + 0.4 * random.random()))
            for pair in list(self._connection._nominated.values()):
                task = asyncio.ensure_future(self._check(pair, password.encode("utf8")))
                self._checks.add(task)
                task.add_done_callback(self._checks.discard)

    async def _check(self, pair: CandidatePair, key: bytes) -> None:
        request = self._connection.build_request(pair, nominate=False)
        with contextlib.suppress(stun.TransactionError, ConnectionError, OSError):
            await pair.protocol.request(
                request, pair.remote_addr, integrity_key=key, retransmissions=0
            )
            self.heard()

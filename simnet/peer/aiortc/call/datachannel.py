"""The call's data channel and the application protocol on it (label "simnet", ordered).

JSON text messages: `ping`/`pong` (RTT probes, offerer -> answerer -> offerer), `bulk` (the
transfer's size and the sender's start time `t0`, then that many bytes as binary chunks),
`bulk-done` (the receiver's count, last byte's time `t_last` and goodput), `summary` (the
offerer's RTT median, for the answerer's result) and `done` (this peer has measured). Times
are the shared clock (`time.monotonic()` in every namespace), so the goodput needs no clock
sync. The Chromium peer's page speaks the same protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel
from aiortc.exceptions import InvalidStateError

from simnet.callspec import DONE_WAIT_S
from simnet.peer.aiortc.call.events import CallEvents
from simnet.peer.aiortc.call.failure import CallFailed, bounded, settle
from simnet.peer.protocol import CallCommand
from simnet.quantile import quantile

CHANNEL_LABEL = "simnet"
BUFFER_HIGH_BYTES = 1 << 20  # pause sending above this much queued in SCTP
BUFFER_LOW_BYTES = 256 << 10  # resume below this

#: One text message of the protocol, as JSON: `{"type": ..., ...}`. The other peer may be a
#: browser's page; what a figure is read from is parsed where it arrives (`BulkDone`).
ControlMessage = dict[str, Any]


@dataclass(frozen=True)
class BulkDone:
    """The receiver's account of the transfer (its `bulk-done` message)."""

    bytes: int
    goodput_mbps: float | None

    @classmethod
    def from_message(cls, message: ControlMessage) -> BulkDone:
        goodput = message.get("goodput_mbps")
        return cls(int(message["bytes"]), float(goodput) if goodput is not None else None)


class DataChannelProtocol:
    """One peer's side of the protocol: `attach()` the channel, `exchange()` once it may open,
    `finish()` at the end. The figures are `rtt_ms`, `bytes` and `goodput_mbps`."""

    def __init__(self, cmd: CallCommand, events: CallEvents) -> None:
        loop = asyncio.get_running_loop()
        self.cmd = cmd
        self._events = events
        self.dc_open: asyncio.Future[RTCDataChannel] = loop.create_future()
        self.dc: RTCDataChannel | None = None
        self.peer_done = asyncio.Event()
        self._pongs: dict[int, asyncio.Future[float]] = {}
        self.bulk_done: asyncio.Future[BulkDone] = loop.create_future()
        self.summary: asyncio.Future[None] = loop.create_future()
        self._rx_expected: int | None = None
        self._rx_t0 = 0.0
        self._rx_bytes = 0
        self.rtt_ms: float | None = None
        self.bytes: int | None = None
        self.goodput_mbps: float | None = None

    def attach(self, dc: RTCDataChannel) -> None:
        """Take the call's channel (the first one: the offerer creates it, the answerer is
        given it); "dc_open" is stamped when it opens."""
        if self.dc is not None:
            return
        self.dc = dc

        def opened() -> None:
            if not self.dc_open.done():
                self._events.event("dc_open")
                settle(self.dc_open, dc)

        dc.on("open", opened)
        dc.on("message", self._on_message)
        # The peer closes only after it has measured and had our "done"; its close can beat its
        # own "done" (closing aborts SCTP with data in flight), so a close counts as "done".
        dc.on("close", self.peer_done.set)
        if dc.readyState == "open":
            opened()

    def _send_control(self, message: ControlMessage) -> None:
        assert self.dc is not None
        self.dc.send(json.dumps(message))

    def _on_message(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self._on_bulk(len(data))
            return
        try:
            message = json.loads(data)
        except ValueError:
            return
        kind = message.get("type")
        if kind == "ping":
            self._send_control({"type": "pong", "seq": message.get("seq")})
        elif kind == "pong":
            future = self._pongs.get(message.get("seq", -1))
            if future is not None:
                settle(future, time.monotonic())
        elif kind == "bulk":
            self._rx_expected = int(message["bytes"])
            self._rx_t0 = float(message["t0"])
            self._rx_bytes = 0
            self._on_bulk(0)
        elif kind == "bulk-done":
            self._on_bulk_done(message)
        elif kind == "summary":
            rtt = message.get("rtt_ms")
            self.rtt_ms = float(rtt) if rtt is not None else None
            settle(self.summary, None)
        elif kind == "done":
            self.peer_done.set()

    def _on_bulk_done(self, message: ControlMessage) -> None:
        """The receiver's report; one that does not parse fails whoever waits for it."""
        if self.bulk_done.done():
            return
        try:
            self.bulk_done.set_result(BulkDone.from_message(message))
        except (KeyError, TypeError, ValueError) as exc:
            self.bulk_done.set_exception(exc)

    def _on_bulk(self, size: int) -> None:
        self._rx_bytes += size
        if self._rx_expected is None or self._rx_bytes < self._rx_expected:
            return
        t_last = time.monotonic()
        elapsed = t_last - self._rx_t0
        goodput = self._rx_bytes * 8 / elapsed / 1e6 if elapsed > 0 else None
        self._rx_expected = None
        self._send_control(
            {
                "type": "bulk-done",
                "bytes": self._rx_bytes,
                "t_last": t_last,
                "goodput_mbps": goodput,
            }
        )
        settle(self.bulk_done, BulkDone(self._rx_bytes, goodput))

    async def exchange(self) -> None:
        """The data-channel phase: open, RTT probes, the bulk transfer and the summary, each
        bounded by the phase's limit."""
        try:
            await self._exchange()
        except InvalidStateError:
            # aiortc refuses to send on a closed channel: the other side gave up on the call
            # (at 60 calls at once, its own data-channel timeout), or SCTP did. Not a bug here.
            raise CallFailed(
                "datachannel", "the data channel closed before its exchange ended"
            ) from None

    async def _exchange(self) -> None:
        limit = self.cmd.timeouts.datachannel_s
        await bounded("datachannel", self.dc_open, limit, "the channel's opening")
        if self.cmd.role == "offer":
            if self.cmd.rtt_probes:
                await bounded("datachannel", self._probe_rtt(), limit, "the RTT probes")
            if self.cmd.data_bytes:
                await bounded("datachannel", self._send_bulk(), limit, "the transfer")
            self._send_control({"type": "summary", "rtt_ms": self.rtt_ms})
        else:
            if self.cmd.data_bytes:
                await bounded("datachannel", self.bulk_done, limit, "the transfer")
            await bounded("datachannel", self.summary, limit, "the offerer's summary")
        if self.bulk_done.done():
            report = self.bulk_done.result()
            self.bytes = report.bytes
            self.goodput_mbps = report.goodput_mbps

    async def _probe_rtt(self) -> None:
        loop = asyncio.get_running_loop()
        samples = []
        for seq in range(self.cmd.rtt_probes):
            self._pongs[seq] = future = loop.create_future()
            sent = time.monotonic()
            self._send_control({"type": "ping", "seq": seq})
            samples.append((await future - sent) * 1000)
        self.rtt_ms = quantile(samples, 0.5)

    async def _send_bulk(self) -> None:
        dc = self.dc
        assert dc is not None
        low = asyncio.Event()
        dc.bufferedAmountLowThreshold = BUFFER_LOW_BYTES
        dc.on("bufferedamountlow", low.set)
        total, chunk = self.cmd.data_bytes, self.cmd.data_chunk_bytes
        payload = bytes(chunk)
        self._send_control({"type": "bulk", "bytes": total, "t0": time.monotonic()})
        sent = 0
        while sent < total:
            while dc.bufferedAmount > BUFFER_HIGH_BYTES:
                low.clear()
                await low.wait()
            size = min(chunk, total - sent)
            dc.send(payload if size == chunk else payload[:size])
            sent += size
        await self.bulk_done

    async def finish(self) -> None:
        """Tell the peer we are done measuring and wait (briefly) for it to say the same."""
        if self.dc is None or self.dc.readyState != "open":
            return  # the connection broke during a hold; there is nobody to tell
        self._send_control({"type": "done"})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(DONE_WAIT_S, self.cmd.timeouts.datachannel_s)):
                await self.peer_done.wait()

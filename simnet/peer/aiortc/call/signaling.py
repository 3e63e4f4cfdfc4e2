"""The call's signaling exchange: its channel to the signaling server, our description out,
the peer's description and trickled candidates in.

One reader (`simnet.peer.aiortc.signaling_router`) takes every message the call gets, so a
candidate the peer trickles while this side still waits for its description is kept, and
applied (by `apply`, the ICE side) in arrival order once the remote description is set.
aiortc itself never trickles: the description it sends carries every local candidate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from simnet.callspec import CLOSE_TIMEOUT_S
from simnet.peer.aiortc.call.events import CallEvents
from simnet.peer.aiortc.call.failure import CallFailed
from simnet.peer.aiortc.http_proxy import PROXY
from simnet.peer.aiortc.signaling_client import (
    Channel,
    SignalingError,
    SignalingMessage,
    open_channel,
)
from simnet.peer.aiortc.signaling_router import (
    ChannelEnded,
    Description,
    DescriptionKind,
    EndOfCandidates,
    RemoteCandidate,
    SignalingRouter,
)
from simnet.peer.protocol import CallCommand

log = logging.getLogger("simnet.peer.aiortc.call")

READ_SLICE_S = 3600.0  # the router reads until the call ends; each wait is re-armed after this

ApplyCandidate = Callable[[RemoteCandidate | EndOfCandidates], Awaitable[None]]


def signaling_failure(exc: SignalingError) -> CallFailed:
    """The call's error for a failed signaling channel: its timeout, or anything else."""
    kind = "timeout:signaling" if exc.kind == "timeout" else "signaling"
    return CallFailed(kind, f"{exc.kind}: {exc.message}")


class SignalingExchange:
    """One call's signaling: `open()`, then `send()` and `receive()` descriptions; `stop()`
    and `close()` when the call ends."""

    def __init__(self, cmd: CallCommand, events: CallEvents, apply: ApplyCandidate) -> None:
        self.cmd = cmd
        self._events = events
        self._apply = apply
        self.channel: Channel | None = None
        self.router: SignalingRouter | None = None

    async def open(self) -> None:
        """Open the channel (bounded by the signaling timeout) and start reading it."""
        cmd = self.cmd
        try:
            self.channel = await open_channel(
                cmd.signaling_kind,
                cmd.signaling_url_base,
                cmd.room,
                cmd.peer,
                cmd.timeouts.signaling_s,
                PROXY.get(),
            )
        except SignalingError as exc:
            raise signaling_failure(exc) from None
        self.router = SignalingRouter(self._next_message, cmd.peer, cmd.remote_peer, self._apply)
        self.router.start()

    async def send(self, kind: DescriptionKind, sdp: str) -> None:
        """Send our description; "<kind>_sent" is stamped when it is handed to the channel
        (the send returns only after the server has relayed it, maybe already delivered)."""
        assert self.channel is not None
        message = {"type": kind, "sdp": sdp, "from": self.cmd.peer, "to": self.cmd.remote_peer}
        handed = time.monotonic()
        try:
            await self.channel.send(message)
        except SignalingError as exc:
            raise signaling_failure(exc) from None
        self._events.event(f"{kind}_sent", t=handed)

    async def receive(self, kind: DescriptionKind) -> Description:
        """The peer's `kind` (the router keeps it if it came first); the caller stamps
        "<kind>_received" with its arrival time, not with when this call returned: a candidate
        trickled right after it is stamped on arrival too, so the order stays the channel's."""
        assert self.router is not None
        try:
            return await self.router.description(kind, self.cmd.timeouts.signaling_s)
        except TimeoutError:
            raise CallFailed(
                "timeout:signaling", f"no {kind} from {self.cmd.remote_peer}"
            ) from None
        except ChannelEnded as exc:
            cause = exc.cause
            if isinstance(cause, SignalingError):
                raise signaling_failure(cause) from None
            raise CallFailed("signaling", f"signaling channel failed: {cause!r}") from None

    def remote_description_set(self) -> None:
        """The peer's description is applied: trickled candidates may now be added."""
        assert self.router is not None
        self.router.remote_description_set()

    async def _next_message(self) -> SignalingMessage:
        """The router's reader: the channel's next message, however long the call waits."""
        assert self.channel is not None
        while True:
            try:
                return await self.channel.receive(READ_SLICE_S)
            except SignalingError as exc:
                if exc.kind != "timeout":
                    raise

    async def stop(self) -> None:
        """Stop reading: no candidate is added to a closing connection."""
        if self.router is not None:
            await self.router.stop()

    async def close(self) -> None:
        """Close the channel, bounded."""
        if self.channel is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.channel.close()
        except TimeoutError:
            log.warning("signaling channel did not close within %s s", CLOSE_TIMEOUT_S)

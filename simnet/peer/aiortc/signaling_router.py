"""Reading a call's signaling: one reader, every message dispatched by its type.

Why a router: a trickling peer (a browser) sends its description first and then each ICE
candidate as a message of its own, and nothing orders those against what this peer is doing:
a candidate can arrive while this side still waits for the description, or while it applies
it. A loop that waits for one message type and skips the others would lose those candidates.
So one task reads the channel for the whole call and dispatches:

- a description ("offer" / "answer") to whoever waits for that kind (`description()`), kept
  until then if it comes first;
- candidates and end-of-candidates into one queue, applied in arrival order by one task that
  starts only once the remote description is set (`remote_description_set()`): the WebRTC rule
  that `addIceCandidate` comes after `setRemoteDescription`.

The messages (docs/peer-protocol.md, "Signaling messages"):
`{"type": "offer"|"answer", "sdp": str, "from": peer, "to": remote_peer}`,
`{"type": "candidate", "candidate": "candidate:...", "sdpMid": str|null,
"sdpMLineIndex": int|null, "from", "to"}` and `{"type": "end-of-candidates", "from", "to"}`.
A message from another peer, addressed to another peer, or of a type this peer does not know
is ignored (a room may hold more than two peers; a newer peer may say more). A malformed
message of a known type is ignored too, but named in the log: a browser's `addIceCandidate`
rejects a bad candidate and the call goes on with the others, and so does this peer.

Pure asyncio: no aiortc here (applying a candidate is the caller's `apply`), so the ordering
logic is testable without a peer connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from simnet.aio import within

if TYPE_CHECKING:
    from simnet.peer.aiortc.signaling_client import SignalingMessage

log = logging.getLogger("simnet.peer.signaling")

DescriptionKind = Literal["offer", "answer"]
CANDIDATE_PREFIX = "candidate:"


@dataclass(frozen=True)
class Description:
    """The peer's offer or answer; `t` is when it arrived (time.monotonic()): its
    "<kind>_received" milestone, on the clock its trickled candidates are stamped with."""

    kind: DescriptionKind
    sdp: str
    t: float


@dataclass(frozen=True)
class RemoteCandidate:
    """One trickled candidate: the SDP attribute's value (`candidate:...`, without `a=`) and
    the media section it belongs to; `t` is when it arrived (time.monotonic())."""

    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None
    t: float

    @property
    def value(self) -> str:
        """The attribute's value after `candidate:` (what aiortc's `candidate_from_sdp` reads)."""
        return self.candidate[len(CANDIDATE_PREFIX) :]


@dataclass(frozen=True)
class EndOfCandidates:
    t: float


Message = Description | RemoteCandidate | EndOfCandidates


class BadMessage(ValueError):
    """A message of a known type that does not follow the schema."""


def parse(message: SignalingMessage, peer: str, remote_peer: str) -> Message | None:
    """What `message` means to `peer` in a call with `remote_peer`; None: not for us or not a
    type we know. Raises BadMessage for a malformed message of a known type.

    An empty `candidate` string is end-of-candidates, as in the WebRTC API (an
    `RTCIceCandidate` whose `candidate` is "" ends the remote candidates)."""
    if message.get("from") != remote_peer:
        return None
    to = message.get("to")
    if to is not None and to != peer:
        return None
    kind = message.get("type")
    t = time.monotonic()
    if kind in ("offer", "answer"):
        sdp = message.get("sdp")
        if not isinstance(sdp, str) or not sdp:
            raise BadMessage(f"{kind} without an 'sdp' string")
        return Description(kind, sdp, t)
    if kind == "end-of-candidates":
        return EndOfCandidates(t)
    if kind != "candidate":
        return None
    candidate = message.get("candidate")
    mid = message.get("sdpMid")
    index = message.get("sdpMLineIndex")
    if not isinstance(candidate, str):
        raise BadMessage("candidate without a 'candidate' string")
    if candidate == "":
        return EndOfCandidates(t)
    if not candidate.startswith(CANDIDATE_PREFIX) or len(candidate.split()) < 8:
        raise BadMessage(
            f"candidate {candidate[:80]!r} is not 'candidate:<foundation> <component> "
            "<transport> <priority> <address> <port> typ <type> ...'"
        )
    if mid is not None and not isinstance(mid, str):
        raise BadMessage(f"candidate with sdpMid {mid!r}: a string or null")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise BadMessage(f"candidate with sdpMLineIndex {index!r}: an integer >= 0 or null")
    if mid is None and index is None:
        raise BadMessage("candidate with neither sdpMid nor sdpMLineIndex")
    return RemoteCandidate(candidate, mid, index, t)


class ChannelEnded(Exception):
    """The signaling channel ended before the awaited description came (`cause` says how)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class SignalingRouter:
    """Reads `receive()` until it raises (the channel ended) or `stop()`; see the module's
    docstring. `apply(item)` applies one remote candidate, or the end of them.
    """

    def __init__(
        self,
        receive: Callable[[], Awaitable[SignalingMessage]],
        peer: str,
        remote_peer: str,
        apply: Callable[[RemoteCandidate | EndOfCandidates], Awaitable[None]],
    ) -> None:
        self._receive = receive
        self.peer = peer
        self.remote_peer = remote_peer
        self._apply = apply
        self._descriptions: dict[str, asyncio.Future[Description | ChannelEnded]] = {}
        self._candidates: asyncio.Queue[RemoteCandidate | EndOfCandidates] = asyncio.Queue()
        self._ended_candidates = False
        self._failure: ChannelEnded | None = None
        self._reader: asyncio.Task[None] | None = None
        self._applier: asyncio.Task[None] | None = None
        self.ignored: list[str] = []  # why each ignored message was ignored (also logged)

    # --- reading ------------------------------------------------------------------------------

    def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                self.deliver(await self._receive())
        except Exception as exc:  # the channel ended: whoever still waits hears why
            self._fail(ChannelEnded(exc))

    def deliver(self, message: SignalingMessage) -> None:
        """Dispatch one message (the reader's step; synchronous, so the order is the
        channel's)."""
        try:
            parsed = parse(message, self.peer, self.remote_peer)
        except BadMessage as exc:
            self._ignore(f"{message.get('type')} from {self.remote_peer}: {exc}")
            return
        if parsed is None:
            return
        if isinstance(parsed, Description):
            future = self._future(parsed.kind)
            if future.done():
                self._ignore(f"a second {parsed.kind} from {self.remote_peer}")
            else:
                future.set_result(parsed)
            return
        if self._ended_candidates:
            self._ignore(f"{message.get('type')} from {self.remote_peer} after end-of-candidates")
            return
        if isinstance(parsed, EndOfCandidates):
            self._ended_candidates = True
        self._candidates.put_nowait(parsed)

    def _ignore(self, why: str) -> None:
        self.ignored.append(why)
        log.warning("ignored signaling message: %s", why)

    def _future(self, kind: str) -> asyncio.Future[Description | ChannelEnded]:
        future = self._descriptions.get(kind)
        if future is None:
            future = self._descriptions[kind] = asyncio.get_running_loop().create_future()
            if self._failure is not None:
                future.set_result(self._failure)
        return future

    def _fail(self, failure: ChannelEnded) -> None:
        if self._failure is None:
            self._failure = failure
        for future in self._descriptions.values():
            if not future.done():
                future.set_result(failure)

    async def description(self, kind: DescriptionKind, timeout_s: float) -> Description:
        """The remote peer's `kind`, already arrived or within `timeout_s`.

        Raises TimeoutError, or ChannelEnded when the channel ended first."""
        result = await within(asyncio.shield(self._future(kind)), timeout_s)
        if isinstance(result, ChannelEnded):
            raise result
        return result

    # --- applying candidates ------------------------------------------------------------------

    def remote_description_set(self) -> None:
        """Start applying the candidates, those already queued first, in arrival order."""
        if self._applier is None:
            self._applier = asyncio.get_running_loop().create_task(self._apply_all())

    async def _apply_all(self) -> None:
        while True:
            item = await self._candidates.get()
            try:
                await self._apply(item)
            except Exception as exc:  # a candidate the stack refuses: the others still count
                self._ignore(f"candidate from {self.remote_peer} refused: {exc!r}")
            if isinstance(item, EndOfCandidates):
                return

    @property
    def pending(self) -> int:
        """Candidates (and end-of-candidates) received and not applied yet."""
        return self._candidates.qsize()

    async def stop(self) -> None:
        """Stop reading and applying; idempotent."""
        for task in (self._reader, self._applier):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

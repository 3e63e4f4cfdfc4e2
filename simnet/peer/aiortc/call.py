"""One WebRTC call from one peer's side, phase by phase, each phase bounded by its timeout.

Run by the agent inside a host's namespace. The phases, and what ends each one:

1. signaling channel open, then offer/answer (aiortc gathers every candidate inside
   `setLocalDescription`, so the description it sends carries them all: it never trickles).
   The remote peer may trickle: one reader (`simnet.peer.aiortc.signaling_router`) takes every
   message the call gets, and trickled candidates are added to the peer connection, in the
   order they came, from the moment the remote description is set;
2. ICE: the ICE connection state reaches "completed" (a pair is nominated) or "failed";
3. DTLS: the peer connection state reaches "connected" or "failed";
4. data channel: open; `rtt_probes` application echoes (offerer → answerer → offerer);
   `data_bytes` sent offerer → answerer, timed from the sender's start to the receiver's last
   byte (one shared clock, so no clock sync is needed);
5. media: the first decoded frame of every expected kind arrives (with `coding: replay`, the
   first reassembled one: replayed media is counted, not decoded), then `duration_s` of media
   measured with `getStats()` samples;
6. a "done" exchange over the data channel, so neither peer closes (and turns the other's
   statistics into a teardown) before both have measured; then the peer connection is closed.
   Closing aborts SCTP with whatever is still in flight, so the last message of a call can be
   lost: a peer takes the channel closing as "done" too, and nothing a peer's result needs is
   sent after the "done" it waits for (the answerer waits for the offerer's summary first).

Every wait has a deadline; a failure stops the call with a classified error (`CallFailed.kind`,
one of `simnet.callspec.ERROR_KINDS`) and the result still carries what was measured up to then.
Both peers use `max-bundle`, as browsers do, so a call has exactly one ICE transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidStateError
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp

from simnet.callspec import CLOSE_TIMEOUT_S, DONE_WAIT_S
from simnet.peer.aiortc.aioice_adapter import (
    TurnRecorder,
    candidate_counts,
    count_without_decoding,
    ice_connection,
    recording_turn,
    selected_pair,
    used_turn_url,
)
from simnet.peer.aiortc.liveness import LivenessMonitor
from simnet.peer.aiortc.media import FrameSink, PatternTrack, ReplayedToneTrack, ToneTrack
from simnet.peer.aiortc.signaling_client import Channel, SignalingError, open_channel
from simnet.peer.aiortc.signaling_router import (
    ChannelEnded,
    DescriptionKind,
    EndOfCandidates,
    RemoteCandidate,
    SignalingRouter,
)
from simnet.peer.protocol import (
    CallCommand,
    CallResult,
    MediaKindStats,
    ReceivedStats,
    SelectedPair,
    SentStats,
)

log = logging.getLogger("simnet.peer.aiortc.call")

Emit = Callable[[dict[str, Any]], None]
_T = TypeVar("_T")

CHANNEL_LABEL = "simnet"
BUFFER_HIGH_BYTES = 1 << 20  # pause sending above this much queued in SCTP
BUFFER_LOW_BYTES = 256 << 10  # resume below this
STATS_INTERVAL_S = 0.5  # getStats() sampling during the media window
CLOCK_RATE = {"audio": 48_000, "video": 90_000}  # RTP clock of Opus and VP8 (jitter units)
READ_SLICE_S = 3600.0  # the router reads until the call ends; each wait is re-armed after this


class CallFailed(Exception):
    """The call stopped; `kind` is one of `simnet.callspec.ERROR_KINDS`."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def _settle(future: asyncio.Future[_T], value: _T) -> None:
    if not future.done():
        future.set_result(value)


class Call:
    """State of one call; `run()` drives it and always returns a `CallResult`."""

    def __init__(self, cmd: CallCommand, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        self.cmd = cmd
        self._emit = emit
        self.phase_t: dict[str, float] = {}
        self.pc: RTCPeerConnection | None = None
        self.channel: Channel | None = None
        self.router: SignalingRouter | None = None
        self.turn: TurnRecorder | None = None
        self.turn_url = used_turn_url(cmd.ice_servers)
        self.ice_done: asyncio.Future[bool] = loop.create_future()
        self.dtls_done: asyncio.Future[bool] = loop.create_future()
        self.dc_open: asyncio.Future[RTCDataChannel] = loop.create_future()
        self.dc: RTCDataChannel | None = None
        self.peer_done = asyncio.Event()
        self.pongs: dict[int, asyncio.Future[float]] = {}
        self.bulk_done: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.summary: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.rx_expected: int | None = None
        self.rx_t0 = 0.0
        self.rx_bytes = 0
        self.tracks: list[MediaStreamTrack] = []
        self.sinks: dict[str, FrameSink] = {}
        self.media_ready = asyncio.Event()
        self.connected = False
        self.dc_rtt_ms: float | None = None
        self.dc_bytes: int | None = None
        self.dc_goodput_mbps: float | None = None
        self.media: list[MediaKindStats] = []
        self.media_window_s: float | None = None
        self.nominated_pair: SelectedPair | None = None
        self.liveness: LivenessMonitor | None = None
        self.disconnects = 0
        self.disconnected_s = 0.0
        self._disconnected_t: float | None = None

    # --- events -----------------------------------------------------------------------------

    def event(
        self, name: str, key: str | None = None, *, t: float | None = None, **fields: Any
    ) -> None:
        """Emit an event (at `t`, default now); the first time of each `key` (default `name`)
        goes in phase_t."""
        t = time.monotonic() if t is None else t
        self.phase_t.setdefault(key or name, t)
        self._emit({"event": name, "t": t, **fields})

    # --- driving ----------------------------------------------------------------------------

    async def run(self) -> CallResult:
        """The whole call; the peer connection is closed whatever happens (cancel included)."""
        try:
            failure = await self._attempt()
            self._stop_liveness()
            fields = self._result_fields(failure)  # before close: it forgets the selected pair
        finally:
            closing = time.monotonic()
            self.event("closing")
            await self._close()
        return CallResult(**fields, close_s=time.monotonic() - closing)

    async def _attempt(self) -> CallFailed | None:
        try:
            with recording_turn(self.cmd.ca_file) as self.turn:
                await self._steps()
        except CallFailed as exc:
            await self._hold()
            return exc
        except Exception as exc:  # a bug or an aiortc surprise: still a result, never a hang
            log.exception("call failed unexpectedly")
            return CallFailed("agent", f"{type(exc).__name__}: {exc}")
        return None

    async def _steps(self) -> None:
        cmd = self.cmd
        self.event("call_started", role=cmd.role, room=cmd.room)
        self.pc = pc = RTCPeerConnection(
            RTCConfiguration(
                # always a list: None would make aiortc use Google's public STUN server
                iceServers=[
                    RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                    for s in cmd.ice_servers
                ],
                iceTransportPolicy=RTCIceTransportPolicy(cmd.ice_transport_policy),
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )
        self._watch(pc)
        await self._open_signaling()
        if cmd.role == "offer":
            self._add_tracks(pc)
            self._attach(pc.createDataChannel(CHANNEL_LABEL, ordered=True))
            await self._offer(pc)
        else:
            pc.on("datachannel", self._attach)
            await self._answer(pc)
        await self._connect()
        await self._datachannel()
        await self._media(pc)
        await self._hold()
        self._stop_liveness()  # what follows is the call ending, not the network
        await self._finish()

    async def _hold(self) -> None:
        """Stay in the call until `hold_s` after the data channel opened (if it did): whatever
        the connection does meanwhile is reported by the state watchers."""
        opened = self.phase_t.get("dc_open")
        if self.cmd.hold_s and opened is not None:
            remaining = opened + self.cmd.hold_s - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(min(remaining, self.cmd.hold_s))

    async def _bounded(self, phase: str, awaitable: Awaitable[_T], timeout_s: float) -> _T:
        try:
            async with asyncio.timeout(timeout_s):
                return await awaitable
        except TimeoutError:
            raise CallFailed(
                f"timeout:{phase}", f"{phase} not done within {timeout_s:g} s"
            ) from None

    # --- signaling ----------------------------------------------------------------------------

    async def _open_signaling(self) -> None:
        cmd = self.cmd
        try:
            self.channel = await open_channel(
                cmd.signaling_kind,
                cmd.signaling_url_base,
                cmd.room,
                cmd.peer,
                cmd.timeouts.signaling_s,
            )
        except SignalingError as exc:
            raise self._signaling_failure(exc) from None
        self.router = SignalingRouter(
            self._next_message, cmd.peer, cmd.remote_peer, self._apply_candidate
        )
        self.router.start()

    def _signaling_failure(self, exc: SignalingError) -> CallFailed:
        kind = "timeout:signaling" if exc.kind == "timeout" else "signaling"
        return CallFailed(kind, f"{exc.kind}: {exc.message}")

    async def _send(self, kind: str, sdp: str) -> None:
        """Send our description; "<kind>_sent" is stamped when it is handed to the channel
        (the send returns only after the server has relayed it, maybe already delivered)."""
        assert self.channel is not None
        message = {"type": kind, "sdp": sdp, "from": self.cmd.peer, "to": self.cmd.remote_peer}
        handed = time.monotonic()
        try:
            await self.channel.send(message)
        except SignalingError as exc:
            raise self._signaling_failure(exc) from None
        self.event(f"{kind}_sent", t=handed)

    async def _receive(self, kind: DescriptionKind) -> str:
        """The SDP of the peer's `kind` (the router keeps it if it came first)."""
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
                raise self._signaling_failure(cause) from None
            raise CallFailed("signaling", f"signaling channel failed: {cause!r}") from None

    async def _next_message(self) -> dict[str, Any]:
        """The router's reader: the channel's next message, however long the call waits."""
        assert self.channel is not None
        while True:
            try:
                return await self.channel.receive(READ_SLICE_S)
            except SignalingError as exc:
                if exc.kind != "timeout":
                    raise

    async def _apply_candidate(self, item: RemoteCandidate | EndOfCandidates) -> None:
        """Hand one trickled remote candidate (or their end) to aiortc, and report it at the
        time it arrived."""
        assert self.pc is not None
        if isinstance(item, EndOfCandidates):
            await self.pc.addIceCandidate(None)
            self.event("remote_candidates_end", t=item.t)
            return
        try:
            candidate = candidate_from_sdp(item.value)
        except (AssertionError, ValueError, IndexError) as exc:
            self._emit(
                {
                    "event": "remote_candidate",
                    "t": item.t,
                    "candidate": item.candidate,
                    "applied": False,
                }
            )
            raise ValueError(f"unparsable candidate {item.candidate!r}") from exc
        candidate.sdpMid = item.sdp_mid
        candidate.sdpMLineIndex = item.sdp_mline_index
        await self.pc.addIceCandidate(candidate)
        self.event("remote_candidate", t=item.t, candidate=item.candidate, applied=True)

    # --- offer / answer -----------------------------------------------------------------------

    async def _offer(self, pc: RTCPeerConnection) -> None:
        offer = await pc.createOffer()
        self.event("offer_created")
        await self._gather(pc, offer)
        await self._send("offer", pc.localDescription.sdp)
        self._check_candidates()
        sdp = await self._receive("answer")
        self.event("answer_received")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self._remote_description_set()

    async def _answer(self, pc: RTCPeerConnection) -> None:
        sdp = await self._receive("offer")
        self.event("offer_received")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self._remote_description_set()
        self._add_tracks(pc)  # after the offer: they take its transceivers (sendrecv)
        answer = await pc.createAnswer()
        await self._gather(pc, answer)
        await self._send("answer", pc.localDescription.sdp)
        self._check_candidates()

    def _remote_description_set(self) -> None:
        assert self.router is not None
        self.router.remote_description_set()

    async def _gather(self, pc: RTCPeerConnection, description: RTCSessionDescription) -> None:
        await self._bounded(
            "gathering", pc.setLocalDescription(description), self.cmd.timeouts.gathering_s
        )
        local, _ = candidate_counts(ice_connection(pc))
        self.event("gathering_done", candidates=local)

    def _check_candidates(self) -> None:
        """No local candidate: aiortc would never start ICE and the call would hang.

        Checked after the description is sent, so the peer fails fast instead of waiting.
        """
        assert self.pc is not None and self.turn is not None
        local, remote = candidate_counts(ice_connection(self.pc))
        if local:
            return
        refusal = self.turn.refusal()
        if refusal is not None:
            raise CallFailed(refusal[0], f"no local candidate: {refusal[1]}")
        failed = "; ".join(a.error or "failed" for a in self.turn.attempts if not a.ok)
        if failed:
            raise CallFailed("ice-failed", f"no local candidate: {failed}")
        if self.cmd.role == "answer" and not remote:
            # The offer said end-of-candidates without any (in its SDP, as aiortc's does, or
            # trickled before our gathering): aioice drops the component, then gathers nothing.
            # A trickled offer without candidates and without the end is fine: aioice gathers
            # and waits for the candidates (docs/peer-protocol.md, "Trickle ICE").
            raise CallFailed("ice-failed", "the offer had no candidate (the peer gathered none)")
        raise CallFailed("ice-failed", "no local candidate gathered")

    # --- connection ---------------------------------------------------------------------------

    def _watch(self, pc: RTCPeerConnection) -> None:
        @pc.on("iceconnectionstatechange")
        def on_ice() -> None:
            state = pc.iceConnectionState
            self._emit({"event": "ice_state", "t": time.monotonic(), "kind": "ice", "state": state})
            if state == "checking":
                self.event("ice_checking")
            elif state == "completed":
                self.event("ice_connected")
                _settle(self.ice_done, True)
                # the pair as nominated: if the peer closes first, aiortc closes this side too
                # and forgets it before the result is written
                self.nominated_pair = selected_pair(pc, self.turn_url)
                self._watch_liveness(pc)
            elif state == "failed":
                self.event("ice_failed")
                _settle(self.ice_done, False)
            if state in ("failed", "closed"):
                self._stop_liveness()

        @pc.on("connectionstatechange")
        def on_connection() -> None:
            state = pc.connectionState
            self._emit(
                {"event": "ice_state", "t": time.monotonic(), "kind": "connection", "state": state}
            )
            if state == "connected":
                self.event("dtls_connected")
                _settle(self.dtls_done, True)
            elif state == "failed":
                _settle(self.ice_done, False)
                _settle(self.dtls_done, False)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind in self.cmd.media.kinds and track.kind not in self.sinks:
                if self.cmd.media.coding == "replay":
                    count_without_decoding(pc, track)
                self.sinks[track.kind] = FrameSink(track, self._first_received)

    def _watch_liveness(self, pc: RTCPeerConnection) -> None:
        spec, connection = self.cmd.liveness, ice_connection(pc)
        if spec is None or connection is None or self.liveness is not None:
            return
        self.liveness = LivenessMonitor(
            connection,
            spec.check_interval_s,
            spec.disconnected_after_s,
            self._liveness_changed,
            self._checked,
        )
        self.liveness.start()

    def _liveness_changed(self, state: str, t: float) -> None:
        if state == "disconnected":
            self.disconnects += 1
            self._disconnected_t = t
        else:
            self._count_disconnected(t)
        self._emit({"event": "ice_state", "t": t, "kind": "ice", "state": state})

    def _checked(self, sent: float, rtt: float | None) -> None:
        self._emit({"event": "ice_check", "t": sent, "rtt_ms": None if rtt is None else rtt * 1000})

    def _count_disconnected(self, until: float) -> None:
        if self._disconnected_t is not None:
            self.disconnected_s += until - self._disconnected_t
            self._disconnected_t = None

    def _stop_liveness(self) -> None:
        """The call's ICE is over (failed, closed, or the call ends): a disconnection still
        running counts up to now."""
        if self.liveness is not None:
            self.liveness.stop()
            self._count_disconnected(time.monotonic())

    async def _connect(self) -> None:
        timeouts = self.cmd.timeouts
        if not await self._bounded("ice", self.ice_done, timeouts.ice_s):
            assert self.turn is not None
            refusal = self.turn.refusal()
            if refusal is not None:
                raise CallFailed(refusal[0], f"ICE failed and {refusal[1]}")
            raise CallFailed("ice-failed", "no candidate pair succeeded")
        if not await self._bounded("dtls", self.dtls_done, timeouts.dtls_s):
            raise CallFailed("dtls", "DTLS handshake failed")
        self.connected = True

    # --- data channel -------------------------------------------------------------------------

    def _attach(self, dc: RTCDataChannel) -> None:
        if self.dc is not None:
            return
        self.dc = dc

        def opened() -> None:
            if not self.dc_open.done():
                self.event("dc_open")
                _settle(self.dc_open, dc)

        dc.on("open", opened)
        dc.on("message", self._on_message)
        # The peer closes only after it has measured and had our "done"; its close can beat its
        # own "done" (closing aborts SCTP with data in flight), so a close counts as "done".
        dc.on("close", self.peer_done.set)
        if dc.readyState == "open":
            opened()

    def _send_control(self, message: dict[str, Any]) -> None:
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
            future = self.pongs.get(message.get("seq", -1))
            if future is not None:
                _settle(future, time.monotonic())
        elif kind == "bulk":
            self.rx_expected = int(message["bytes"])
            self.rx_t0 = float(message["t0"])
            self.rx_bytes = 0
            self._on_bulk(0)
        elif kind == "bulk-done":
            _settle(self.bulk_done, message)
        elif kind == "summary":
            rtt = message.get("rtt_ms")
            self.dc_rtt_ms = float(rtt) if rtt is not None else None
            _settle(self.summary, message)
        elif kind == "done":
            self.peer_done.set()

    def _on_bulk(self, size: int) -> None:
        self.rx_bytes += size
        if self.rx_expected is None or self.rx_bytes < self.rx_expected:
            return
        t_last = time.monotonic()
        elapsed = t_last - self.rx_t0
        goodput = self.rx_bytes * 8 / elapsed / 1e6 if elapsed > 0 else None
        self.rx_expected = None
        report = {
            "type": "bulk-done",
            "bytes": self.rx_bytes,
            "t_last": t_last,
            "goodput_mbps": goodput,
        }
        self._send_control(report)
        _settle(self.bulk_done, report)

    async def _datachannel(self) -> None:
        try:
            await self._exchange()
        except InvalidStateError:
            # aiortc refuses to send on a closed channel: the other side gave up on the call
            # (at 60 calls at once, its own data-channel timeout), or SCTP did. Not a bug here.
            raise CallFailed(
                "datachannel", "the data channel closed before its exchange ended"
            ) from None

    async def _exchange(self) -> None:
        """RTT probes, the bulk transfer and the summary, each bounded by the phase's limit."""
        limit = self.cmd.timeouts.datachannel_s
        await self._bounded("datachannel", self.dc_open, limit)
        if self.cmd.role == "offer":
            if self.cmd.rtt_probes:
                await self._bounded("datachannel", self._probe_rtt(), limit)
            if self.cmd.data_bytes:
                await self._bounded("datachannel", self._send_bulk(), limit)
            self._send_control({"type": "summary", "rtt_ms": self.dc_rtt_ms})
        else:
            if self.cmd.data_bytes:
                await self._bounded("datachannel", self.bulk_done, limit)
            await self._bounded("datachannel", self.summary, limit)
        if self.bulk_done.done():
            report = self.bulk_done.result()
            self.dc_bytes = int(report["bytes"])
            goodput = report.get("goodput_mbps")
            self.dc_goodput_mbps = float(goodput) if goodput is not None else None

    async def _probe_rtt(self) -> None:
        loop = asyncio.get_running_loop()
        samples = []
        for seq in range(self.cmd.rtt_probes):
            self.pongs[seq] = future = loop.create_future()
            sent = time.monotonic()
            self._send_control({"type": "ping", "seq": seq})
            samples.append((await future - sent) * 1000)
        self.dc_rtt_ms = statistics.median(samples)

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

    # --- media --------------------------------------------------------------------------------

    def _add_tracks(self, pc: RTCPeerConnection) -> None:
        spec = self.cmd.media
        if spec.audio:
            tone = ReplayedToneTrack if spec.coding == "replay" else ToneTrack
            self.tracks.append(tone(on_first=self._first_sent))
        if spec.video is not None:
            video = spec.video
            self.tracks.append(
                PatternTrack(video.width, video.height, video.fps, on_first=self._first_sent)
            )
        for track in self.tracks:
            pc.addTrack(track)

    def _first_sent(self, kind: str) -> None:
        self.event("first_frame", f"first_frame:{kind}:send", kind=kind, direction="send")

    def _first_received(self, kind: str) -> None:
        self.event("first_frame", f"first_frame:{kind}:recv", kind=kind, direction="recv")
        expected = set(self.cmd.media.kinds)
        if expected <= {k for k, s in self.sinks.items() if s.first_t is not None}:
            self.media_ready.set()

    async def _media(self, pc: RTCPeerConnection) -> None:
        if not self.cmd.media.kinds:
            return
        await self._bounded("media", self.media_ready.wait(), self.cmd.timeouts.media_s)
        start = time.monotonic()
        end = start + self.cmd.duration_s
        samples = [await pc.getStats()]
        while (now := time.monotonic()) < end:
            await asyncio.sleep(min(STATS_INTERVAL_S, end - now))
            samples.append(await pc.getStats())
        end = time.monotonic()
        self.media_window_s = end - start
        self.media = [self._kind_stats(kind, samples, start, end) for kind in self.cmd.media.kinds]
        silent = [m.kind for m in self.media if m.received is None or m.received.frames == 0]
        if self.cmd.duration_s > 0 and silent:
            raise CallFailed("media", f"no {', '.join(silent)} frames during the media window")

    def _kind_stats(
        self, kind: str, samples: Sequence[Mapping[str, Any]], start: float, end: float
    ) -> MediaKindStats:
        """One kind's figures over the window, from the first and last `getStats()` samples.

        aiortc's inbound stats have no byte count, so the received bitrate comes from the
        sender's RTCP sender reports (cumulative octets at the sender's NTP time), taken from
        every sample because a report arrives only about once a second.
        """
        window = end - start
        before, after = samples[0], samples[-1]

        def find(report: Mapping[str, Any], type_: str) -> Any | None:
            for stats in report.values():
                if stats.type == type_ and stats.kind == kind:
                    return stats
            return None

        def rate_kbps(now: int, then: int) -> float:
            return (now - then) * 8 / window / 1000 if window > 1e-3 else 0.0

        sent = None
        out1, out0 = find(after, "outbound-rtp"), find(before, "outbound-rtp")
        if out1 is not None:
            sent = SentStats(
                packets=out1.packetsSent,
                bytes=out1.bytesSent,
                bitrate_kbps=rate_kbps(out1.bytesSent, out0.bytesSent if out0 else 0),
            )
        received = None
        in1 = find(after, "inbound-rtp")
        sink = self.sinks.get(kind)
        if in1 is not None:
            reports = sorted(
                {
                    (r.remoteTimestamp.timestamp(), r.bytesSent)
                    for sample in samples
                    if (r := find(sample, "remote-outbound-rtp")) is not None
                    and r.remoteTimestamp is not None
                }
            )
            bitrate = None
            if len(reports) >= 2 and reports[-1][0] > reports[0][0]:
                (t0, b0), (t1, b1) = reports[0], reports[-1]
                bitrate = (b1 - b0) * 8 / (t1 - t0) / 1000
            frames = sink.frames_between(start, end) if sink else 0
            received = ReceivedStats(
                packets=in1.packetsReceived,
                packets_lost=in1.packetsLost,
                jitter_ms=(in1.jitter or 0) / CLOCK_RATE[kind] * 1000,
                frames=frames,
                fps=frames / window if window > 1e-3 else 0.0,
                bitrate_kbps=bitrate,
            )
        remote_in = find(after, "remote-inbound-rtp")
        # remote-inbound-rtp exists once an RTCP receiver report arrived; its RTT may still be
        # unset (None) when the report carried no LSR/DLSR yet.
        rtt_s = remote_in.roundTripTime if remote_in is not None else None
        rtt = rtt_s * 1000 if rtt_s is not None else None
        return MediaKindStats(kind=kind, sent=sent, received=received, rtt_ms=rtt)

    # --- ending -------------------------------------------------------------------------------

    async def _finish(self) -> None:
        """Tell the peer we are done measuring and wait (briefly) for it to say the same."""
        if self.dc is None or self.dc.readyState != "open":
            return  # the connection broke during a hold; there is nobody to tell
        self._send_control({"type": "done"})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(DONE_WAIT_S, self.cmd.timeouts.datachannel_s)):
                await self.peer_done.wait()

    def _result_fields(self, failure: CallFailed | None) -> dict[str, Any]:
        cmd = self.cmd
        pc = self.pc
        local, remote = candidate_counts(ice_connection(pc)) if pc else ({}, {})
        start_key = "offer_created" if cmd.role == "offer" else "offer_received"
        setup = None
        if start_key in self.phase_t and "dc_open" in self.phase_t:
            setup = self.phase_t["dc_open"] - self.phase_t[start_key]
        return dict(
            role=cmd.role,
            connected=self.connected,
            error=failure.kind if failure else None,
            error_detail=failure.detail if failure else None,
            selected_pair=(selected_pair(pc, self.turn_url) if pc else None) or self.nominated_pair,
            local_candidates=local,
            remote_candidates=remote,
            turn_attempts=self.turn.attempts if self.turn else [],
            phase_t=self.phase_t,
            setup_s=setup,
            dc_rtt_ms=self.dc_rtt_ms,
            dc_bytes=self.dc_bytes,
            dc_goodput_mbps=self.dc_goodput_mbps,
            media=self.media,
            media_window_s=self.media_window_s,
            disconnects=self.disconnects,
            disconnected_s=self.disconnected_s,
        )

    async def _close(self) -> None:
        """Stop reading signaling, stop tracks and sinks, close the peer connection and the
        signaling channel, bounded."""
        self._stop_liveness()
        if self.router is not None:
            await self.router.stop()  # no candidate is added to a closing connection
        for track in self.tracks:
            track.stop()
        for sink in self.sinks.values():
            await sink.stop()
        if self.pc is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self.pc.close()
            except TimeoutError:
                log.warning("peer connection did not close within %s s", CLOSE_TIMEOUT_S)
        if self.channel is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self.channel.close()
            except TimeoutError:
                log.warning("signaling channel did not close within %s s", CLOSE_TIMEOUT_S)


async def run_call(cmd: CallCommand, emit: Emit) -> CallResult:
    """Run one call; emits phase events through `emit`, returns the result (never raises
    except on cancellation)."""
    return await Call(cmd, emit).run()

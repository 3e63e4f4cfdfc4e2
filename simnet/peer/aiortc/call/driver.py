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

Each phase is a part of its own (this package's modules, named after the spec object they
drive): `signaling` (the offer/answer exchange), `transport` (ICE and DTLS), `datachannel` (the
application protocol), `tracks` (media), and `result` (what the agent reports, with `stats`);
`Call` here only runs them in order.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

from simnet.callspec import CLOSE_TIMEOUT_S
from simnet.peer.aiortc.aioice_adapter import (
    TurnRecorder,
    accept_ip_literals,
    recording_turn,
    turn_urls_by_transport,
    used_turn_url,
)
from simnet.peer.aiortc.call.datachannel import CHANNEL_LABEL, DataChannelProtocol
from simnet.peer.aiortc.call.events import CallEvents, Emit
from simnet.peer.aiortc.call.failure import CallFailed
from simnet.peer.aiortc.call.result import CallOutcome
from simnet.peer.aiortc.call.signaling import SignalingExchange
from simnet.peer.aiortc.call.tracks import CallMedia
from simnet.peer.aiortc.call.transport import Transport
from simnet.peer.aiortc.http_proxy import PROXY, through_proxy
from simnet.peer.aiortc.namespaced import CURRENT
from simnet.peer.aiortc.resolve import resolved_servers
from simnet.peer.protocol import CallCommand, CallResult
from simnet.peer.serve import current_netns

log = logging.getLogger("simnet.peer.aiortc.call")


class Call:
    """One call; `run()` drives it through its phases and always returns a `CallResult`."""

    def __init__(self, cmd: CallCommand, emit: Emit) -> None:
        self.cmd = cmd
        accept_ip_literals()  # TURN and STUN URLs to an IPv6 address
        # behind an HTTP proxy, only what can go through it (TURN over TCP and TLS)
        proxied = PROXY.get() is not None
        self.ice_servers = through_proxy(cmd.ice_servers) if proxied else cmd.ice_servers
        self.turn_url = used_turn_url(self.ice_servers)  # as given: a name stays a name
        self.events = CallEvents(emit)
        self.channel = DataChannelProtocol(cmd, self.events)
        self.media = CallMedia(cmd, self.events)
        self.pc: RTCPeerConnection | None = None
        self.transport: Transport | None = None
        self.signaling: SignalingExchange | None = None
        self.turn: TurnRecorder | None = None

    async def run(self) -> CallResult:
        """The whole call; the peer connection is closed whatever happens (cancel included)."""
        try:
            failure = await self._attempt()
            self._stop_liveness()
            # before the close: it forgets the selected pair
            outcome = CallOutcome.take(
                self.cmd.role, failure, self.transport, self.turn, self.channel, self.media
            )
        finally:
            closing = time.monotonic()
            self.events.event("closing")
            await self._close()
        return outcome.result(self.events.phase_t, close_s=time.monotonic() - closing)

    async def _attempt(self) -> CallFailed | None:
        try:
            with recording_turn(self.cmd.ca_file) as self.turn:
                await self._steps(self.turn)
        except CallFailed as exc:
            await self._hold()
            return exc
        except Exception as exc:  # a bug or an aiortc surprise: still a result, never a hang
            log.exception("call failed unexpectedly")
            return CallFailed("agent", f"{type(exc).__name__}: {exc}")
        return None

    async def _steps(self, turn: TurnRecorder) -> None:
        """The phases in order: signaling, ICE and DTLS, data channel, media, the ending."""
        cmd = self.cmd
        self.events.event("call_started", role=cmd.role, room=cmd.room)
        # names resolved as this host resolves them (simnet.peer.aiortc.resolve)
        if not self.ice_servers and cmd.ice_servers:
            raise CallFailed(
                "ice-failed",
                "behind an HTTP proxy, and the call offers no TURN over TCP or TLS to go "
                "through it (STUN and TURN over UDP cannot)",
            )
        servers = await resolved_servers(self.ice_servers, lambda: CURRENT.get() or current_netns())
        # aiortc allocates on the first TURN URL; the others' transports are the fallbacks
        turn.relay_url = self.turn_url
        turn.fallbacks = turn_urls_by_transport(servers)[1:]
        self.pc = pc = RTCPeerConnection(
            RTCConfiguration(
                # always a list: None would make aiortc use Google's public STUN server
                iceServers=[
                    RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                    for s in servers
                ],
                iceTransportPolicy=RTCIceTransportPolicy(cmd.ice_transport_policy),
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )
        self.transport = transport = Transport(pc, cmd, self.events, turn)
        transport.watch()
        self.media.watch(pc)
        self.signaling = signaling = SignalingExchange(
            cmd, self.events, transport.add_remote_candidate
        )
        await signaling.open()
        if cmd.role == "offer":
            self.media.add_tracks(pc)
            self.channel.attach(pc.createDataChannel(CHANNEL_LABEL, ordered=True))
            await self._offer(pc, transport, signaling, turn)
        else:
            pc.on("datachannel", self.channel.attach)
            await self._answer(pc, transport, signaling, turn)
        await transport.connect(turn)
        await self.channel.exchange()
        await self.media.measure(pc)
        await self._hold()
        self._stop_liveness()  # what follows is the call ending, not the network
        await self.channel.finish()

    async def _offer(
        self,
        pc: RTCPeerConnection,
        transport: Transport,
        signaling: SignalingExchange,
        turn: TurnRecorder,
    ) -> None:
        offer = await pc.createOffer()
        self.events.event("offer_created")
        await transport.gather(offer)
        await signaling.send("offer", pc.localDescription.sdp)
        transport.check_candidates(turn)
        answer = await signaling.receive("answer")
        self.events.event("answer_received", t=answer.t)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        signaling.remote_description_set()

    async def _answer(
        self,
        pc: RTCPeerConnection,
        transport: Transport,
        signaling: SignalingExchange,
        turn: TurnRecorder,
    ) -> None:
        offer = await signaling.receive("offer")
        self.events.event("offer_received", t=offer.t)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        signaling.remote_description_set()
        self.media.add_tracks(pc)  # after the offer: they take its transceivers (sendrecv)
        answer = await pc.createAnswer()
        await transport.gather(answer)
        await signaling.send("answer", pc.localDescription.sdp)
        transport.check_candidates(turn)

    async def _hold(self) -> None:
        """Stay in the call until `hold_s` after the data channel opened (if it did): whatever
        the connection does meanwhile is reported by the state watchers."""
        opened = self.events.phase_t.get("dc_open")
        if self.cmd.hold_s and opened is not None:
            remaining = opened + self.cmd.hold_s - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(min(remaining, self.cmd.hold_s))

    def _stop_liveness(self) -> None:
        if self.transport is not None:
            self.transport.liveness.stop()

    async def _close(self) -> None:
        """Stop reading signaling, stop tracks and sinks, close the peer connection and the
        signaling channel, bounded."""
        self._stop_liveness()
        if self.signaling is not None:
            await self.signaling.stop()  # no candidate is added to a closing connection
        await self.media.stop()
        if self.pc is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self.pc.close()
            except TimeoutError:
                log.warning("peer connection did not close within %s s", CLOSE_TIMEOUT_S)
        if self.signaling is not None:
            await self.signaling.close()


async def run_call(cmd: CallCommand, emit: Emit) -> CallResult:
    """Run one call; emits phase events through `emit`, returns the result (never raises
    except on cancellation)."""
    return await Call(cmd, emit).run()

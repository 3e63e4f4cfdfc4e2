"""The call's one ICE transport and the DTLS on it (`max-bundle`: exactly one of each).

Gathering (inside `setLocalDescription`), the remote candidates the peer trickles, the ICE and
peer-connection states (what ends the ICE and DTLS phases), the pair ICE nominated, and the
liveness checks that report "disconnected" and back as a browser does
(`simnet.peer.aiortc.liveness`). aiortc cannot restart ICE, so nothing here does.
"""

from __future__ import annotations

import asyncio
import time

from aioice.ice import Connection
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from simnet.callspec import Liveness
from simnet.peer.aiortc.aioice_adapter import (
    TurnRecorder,
    candidate_counts,
    direct_pair_succeeded,
    family_counts,
    ice_connection,
    selected_pair,
)
from simnet.peer.aiortc.call.events import CallEvents
from simnet.peer.aiortc.call.failure import CallFailed, bounded, settle
from simnet.peer.aiortc.liveness import LivenessMonitor
from simnet.peer.aiortc.signaling_router import EndOfCandidates, RemoteCandidate
from simnet.peer.protocol import CallCommand, SelectedPair


class LivenessWatch:
    """Runs the liveness monitor once ICE completed, reports its states and checks as events,
    and counts the disconnections and the time spent in them."""

    def __init__(self, spec: Liveness | None, events: CallEvents) -> None:
        self._spec = spec
        self._events = events
        self._monitor: LivenessMonitor | None = None
        self.disconnects = 0
        self.disconnected_s = 0.0
        self._disconnected_t: float | None = None

    def start(self, connection: Connection | None) -> None:
        spec = self._spec
        if spec is None or connection is None or self._monitor is not None:
            return
        self._monitor = LivenessMonitor(
            connection,
            spec.check_interval_s,
            spec.disconnected_after_s,
            self._changed,
            self._checked,
        )
        self._monitor.start()

    def stop(self) -> None:
        """The call's ICE is over (failed, closed, or the call ends): a disconnection still
        running counts up to now."""
        if self._monitor is not None:
            self._monitor.stop()
            self._count_disconnected(time.monotonic())

    def _changed(self, state: str, t: float) -> None:
        if state == "disconnected":
            self.disconnects += 1
            self._disconnected_t = t
        else:
            self._count_disconnected(t)
        self._events.emit({"event": "ice_state", "t": t, "kind": "ice", "state": state})

    def _checked(self, sent: float, rtt: float | None) -> None:
        rtt_ms = None if rtt is None else rtt * 1000
        self._events.emit({"event": "ice_check", "t": sent, "rtt_ms": rtt_ms})

    def _count_disconnected(self, until: float) -> None:
        if self._disconnected_t is not None:
            self.disconnected_s += until - self._disconnected_t
            self._disconnected_t = None


class Transport:
    """ICE and DTLS of one peer connection: `watch()` it first, then `gather()` with each
    local description, `connect()` for the ICE and DTLS phases."""

    def __init__(
        self, pc: RTCPeerConnection, cmd: CallCommand, events: CallEvents, turn: TurnRecorder
    ) -> None:
        loop = asyncio.get_running_loop()
        self.pc = pc
        self.cmd = cmd
        self._events = events
        self._turn = turn
        self.ice_done: asyncio.Future[bool] = loop.create_future()
        self.dtls_done: asyncio.Future[bool] = loop.create_future()
        self.connected = False
        self.nominated_pair: SelectedPair | None = None
        self.direct_at_nomination: bool | None = None
        self.liveness = LivenessWatch(cmd.liveness, events)

    def watch(self) -> None:
        """Follow the ICE and peer-connection states: they end the ICE and DTLS phases."""
        pc, events = self.pc, self._events

        @pc.on("iceconnectionstatechange")
        def on_ice() -> None:
            state = pc.iceConnectionState
            events.emit(
                {"event": "ice_state", "t": time.monotonic(), "kind": "ice", "state": state}
            )
            if state == "checking":
                events.event("ice_checking")
            elif state == "completed":
                events.event("ice_connected")
                settle(self.ice_done, True)
                # the pair as nominated: if the peer closes first, aiortc closes this side too
                # and forgets it before the result is written
                self.nominated_pair = selected_pair(pc, self._turn.relay_url)
                self.direct_at_nomination = direct_pair_succeeded(ice_connection(pc))
                self.liveness.start(ice_connection(pc))
            elif state == "failed":
                events.event("ice_failed")
                settle(self.ice_done, False)
            if state in ("failed", "closed"):
                self.liveness.stop()

        @pc.on("connectionstatechange")
        def on_connection() -> None:
            state = pc.connectionState
            events.emit(
                {"event": "ice_state", "t": time.monotonic(), "kind": "connection", "state": state}
            )
            if state == "connected":
                events.event("dtls_connected")
                settle(self.dtls_done, True)
            elif state == "failed":
                settle(self.ice_done, False)
                settle(self.dtls_done, False)

    async def gather(self, description: RTCSessionDescription) -> None:
        """Set the local description: aiortc gathers every candidate there (bounded; the TURN
        fallbacks within the same bound)."""
        timeout_s = self.cmd.timeouts.gathering_s
        self._turn.deadline = time.monotonic() + timeout_s
        await bounded("gathering", self.pc.setLocalDescription(description), timeout_s)
        local, _ = self.candidate_counts()
        self._events.event("gathering_done", candidates=local)

    def check_candidates(self, turn: TurnRecorder) -> None:
        """No local candidate: aiortc would never start ICE and the call would hang.

        Checked after the description is sent, so the peer fails fast instead of waiting.
        """
        local, remote = self.candidate_counts()
        if local:
            return
        refusal = turn.refusal()
        if refusal is not None:
            raise CallFailed(refusal[0], f"no local candidate: {refusal[1]}")
        failed = "; ".join(a.error or "failed" for a in turn.attempts if not a.ok)
        if failed:
            raise CallFailed("ice-failed", f"no local candidate: {failed}")
        if self.cmd.role == "answer" and not remote:
            # The offer said end-of-candidates without any (in its SDP, as aiortc's does, or
            # trickled before our gathering): aioice drops the component, then gathers nothing.
            # A trickled offer without candidates and without the end is fine: aioice gathers
            # and waits for the candidates (docs/peer-protocol.md, "Trickle ICE").
            raise CallFailed("ice-failed", "the offer had no candidate (the peer gathered none)")
        raise CallFailed("ice-failed", "no local candidate gathered")

    async def add_remote_candidate(self, item: RemoteCandidate | EndOfCandidates) -> None:
        """Hand one trickled remote candidate (or their end) to aiortc, and report it at the
        time it arrived."""
        if isinstance(item, EndOfCandidates):
            await self.pc.addIceCandidate(None)
            self._events.event("remote_candidates_end", t=item.t)
            return
        try:
            candidate = candidate_from_sdp(item.value)
        except (AssertionError, ValueError, IndexError) as exc:
            self._events.emit(
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
        self._events.event("remote_candidate", t=item.t, candidate=item.candidate, applied=True)

    async def connect(self, turn: TurnRecorder) -> None:
        """The ICE phase (a pair nominated), then the DTLS phase (the handshake done)."""
        timeouts = self.cmd.timeouts
        if not await bounded("ice", self.ice_done, timeouts.ice_s):
            refusal = turn.refusal()
            if refusal is not None:
                raise CallFailed(refusal[0], f"ICE failed and {refusal[1]}")
            raise CallFailed("ice-failed", "no candidate pair succeeded")
        if not await bounded("dtls", self.dtls_done, timeouts.dtls_s):
            raise CallFailed("dtls", "DTLS handshake failed")
        self.connected = True

    def candidate_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(local, remote) candidates by type."""
        return candidate_counts(ice_connection(self.pc))

    def family_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(local, remote) candidates by address family."""
        return family_counts(ice_connection(self.pc))

    def direct_pair_succeeded(self) -> bool | None:
        """Whether a direct pair passed its checks, by now or by the nomination (the check list
        is gone once the connection closes); None where neither could be read."""
        now = direct_pair_succeeded(ice_connection(self.pc))
        seen = [v for v in (now, self.direct_at_nomination) if v is not None]
        return any(seen) if seen else None

    def final_pair(self) -> SelectedPair | None:
        """The selected pair now, or the one nominated if the connection has closed since."""
        return selected_pair(self.pc, self._turn.relay_url) or self.nominated_pair

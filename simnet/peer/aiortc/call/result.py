"""What the agent reports of a call (`CallResult`), from what its parts measured.

Taken in two steps because closing the peer connection makes aiortc forget the selected pair
while the result also carries the close's duration and the "closing" milestone: `CallOutcome`
is taken before the close, `CallOutcome.result()` after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from simnet.peer.aiortc.aioice_adapter import TurnRecorder
from simnet.peer.aiortc.call.datachannel import DataChannelProtocol
from simnet.peer.aiortc.call.failure import CallFailed
from simnet.peer.aiortc.call.tracks import CallMedia
from simnet.peer.aiortc.call.transport import Transport
from simnet.peer.protocol import CallResult, MediaKindStats, Role, SelectedPair, TurnAttempt


@dataclass(frozen=True)
class CallOutcome:
    """A call's figures and how it ended, as they stand before the peer connection closes."""

    role: Role
    failure: CallFailed | None
    connected: bool
    selected_pair: SelectedPair | None
    direct_pair_succeeded: bool | None
    local_candidates: dict[str, int]
    remote_candidates: dict[str, int]
    local_families: dict[str, int]
    remote_families: dict[str, int]
    turn_attempts: list[TurnAttempt]
    dc_rtt_ms: float | None
    dc_bytes: int | None
    dc_goodput_mbps: float | None
    media: list[MediaKindStats]
    media_window_s: float | None
    disconnects: int
    disconnected_s: float

    @classmethod
    def take(
        cls,
        role: Role,
        failure: CallFailed | None,
        transport: Transport | None,
        turn: TurnRecorder | None,
        channel: DataChannelProtocol,
        media: CallMedia,
    ) -> CallOutcome:
        """The outcome now; `transport` is None when the call failed before it had a peer
        connection."""
        local, remote = transport.candidate_counts() if transport else ({}, {})
        local_families, remote_families = transport.family_counts() if transport else ({}, {})
        return cls(
            role=role,
            failure=failure,
            connected=transport.connected if transport else False,
            selected_pair=transport.final_pair() if transport else None,
            direct_pair_succeeded=transport.direct_pair_succeeded() if transport else None,
            local_candidates=local,
            remote_candidates=remote,
            local_families=local_families,
            remote_families=remote_families,
            turn_attempts=turn.attempts if turn else [],
            dc_rtt_ms=channel.rtt_ms,
            dc_bytes=channel.bytes,
            dc_goodput_mbps=channel.goodput_mbps,
            media=media.stats,
            media_window_s=media.window_s,
            disconnects=transport.liveness.disconnects if transport else 0,
            disconnected_s=transport.liveness.disconnected_s if transport else 0.0,
        )

    def result(self, phase_t: Mapping[str, float], close_s: float) -> CallResult:
        """The result, with the call's milestones and the time its close took. `setup_s`: offer
        created (offerer) or received (answerer) to the data channel open."""
        start_key = "offer_created" if self.role == "offer" else "offer_received"
        setup = None
        if start_key in phase_t and "dc_open" in phase_t:
            setup = phase_t["dc_open"] - phase_t[start_key]
        failure = self.failure
        return CallResult(
            role=self.role,
            connected=self.connected,
            error=failure.kind if failure else None,
            error_detail=failure.detail if failure else None,
            selected_pair=self.selected_pair,
            direct_pair_succeeded=self.direct_pair_succeeded,
            local_candidates=self.local_candidates,
            remote_candidates=self.remote_candidates,
            local_candidate_families=self.local_families,
            remote_candidate_families=self.remote_families,
            turn_attempts=self.turn_attempts,
            phase_t=dict(phase_t),
            setup_s=setup,
            dc_rtt_ms=self.dc_rtt_ms,
            dc_bytes=self.dc_bytes,
            dc_goodput_mbps=self.dc_goodput_mbps,
            media=self.media,
            media_window_s=self.media_window_s,
            close_s=close_s,
            disconnects=self.disconnects,
            disconnected_s=self.disconnected_s,
        )

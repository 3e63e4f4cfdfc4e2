"""What the controller and the peer agent say to each other: one JSON object per line.

The controller writes commands to the agent's stdin (`{"cmd": "call", ...CallCommand}`,
`{"cmd": "exit"}`); the agent writes events to its stdout, each with `"t"`, a
`time.monotonic()` reading. Every namespace shares the same monotonic clock, so timestamps from
the two peers of a call (and from the orchestrator) are directly comparable: one-way phase
timings need no clock synchronisation.

The models live here, apart from the agent, so the orchestrator can build and validate a call
without importing aiortc; they are plain pydantic data with no behaviour. A call's settings
(media, timeouts, liveness) and the names of its phases, milestones and errors are
`simnet.callspec`'s, shared with the scenario model.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simnet.callspec import IcePolicy, Liveness, MediaSpec, SignalingKind, Timeouts

Role = Literal["offer", "answer"]

#: The version of this interface. A peer announces the version it speaks in its "ready" event
#: (`"protocol": 1`); the controller refuses a peer that speaks another one, with a message that
#: names both. Raised when a change would break an existing peer (a field renamed or removed, a
#: meaning changed); new optional fields do not raise it.
PROTOCOL_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IceServer(_Model):
    """One RTCIceServer. Note aiortc uses only the first STUN and the first TURN URL it accepts
    across all servers (and only `turn:...?transport=udp|tcp` and `turns:...?transport=tcp`)."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class CallCommand(_Model):
    """One call, from one peer's side. Both peers get the same fields except role and ids."""

    role: Role
    signaling_kind: SignalingKind = "ws"
    signaling_url_base: str
    room: str
    peer: str
    remote_peer: str
    ice_servers: list[IceServer] = Field(default_factory=list)
    ice_transport_policy: IcePolicy = "all"
    # PEM file of CAs trusted for turns: URLs (coturn's self-signed certificate); None = the
    # system store.
    ca_file: str | None = None
    data_bytes: int = Field(
        default=1_000_000, ge=0
    )  # offerer -> answerer, reliable ordered channel
    data_chunk_bytes: int = Field(default=16_384, ge=1, le=65_536)
    rtt_probes: int = Field(default=10, ge=0)  # application-level echoes before the transfer
    media: MediaSpec = Field(default_factory=MediaSpec)
    duration_s: float = Field(default=0.0, ge=0)  # media time measured after the first frames
    # Keep the call up this long after the data channel opens, whatever ICE does meanwhile (a
    # timeline's window; ICE and connection state changes are reported as "ice_state" events).
    hold_s: float = Field(default=0.0, ge=0)
    # ICE "disconnected" as a browser reports it (simnet.peer.liveness); None: aiortc's states only
    liveness: Liveness | None = Field(default_factory=Liveness)
    timeouts: Timeouts = Field(default_factory=Timeouts)


class CandidateInfo(_Model):
    type: str  # host / srflx / prflx / relay
    protocol: str  # udp / tcp
    address: str
    port: int


class RelayInfo(_Model):
    """How the local relayed candidate reaches its TURN server."""

    server_url: str | None  # the ice_servers URL aiortc used (it uses exactly one)
    server: str  # "ip:port"
    transport: Literal["udp", "tcp", "tls"]


class SelectedPair(_Model):
    local: CandidateInfo
    remote: CandidateInfo
    relay: RelayInfo | None = None  # set when the local candidate is a relay


class TurnAttempt(_Model):
    """One TURN allocation aioice tried while gathering (recorded by the agent)."""

    server: str
    transport: Literal["udp", "tcp", "tls"]
    ok: bool
    error: str | None = None
    error_code: int | None = None
    elapsed_ms: float


class SentStats(_Model):
    packets: int
    bytes: int
    bitrate_kbps: float  # over the measured media window


class ReceivedStats(_Model):
    packets: int
    packets_lost: int
    jitter_ms: float
    frames: int  # decoded frames delivered to the application in the window
    fps: float
    # From the sender's RTCP sender reports (aiortc's inbound stats have no byte count); None
    # when fewer than two reports arrived in the window (they come about once a second).
    bitrate_kbps: float | None


class MediaKindStats(_Model):
    kind: str
    sent: SentStats | None
    received: ReceivedStats | None
    rtt_ms: float | None  # from remote-inbound-rtp (RTCP receiver reports), if any arrived


class CallResult(_Model):
    """The final event of a call (`{"event": "result", "t": ..., **CallResult}`)."""

    role: Role
    connected: bool  # ICE nominated a pair and DTLS completed
    error: str | None = None  # None or one of simnet.callspec.ERROR_KINDS
    error_detail: str | None = None
    selected_pair: SelectedPair | None = None
    local_candidates: dict[str, int] = Field(default_factory=dict)  # type -> count
    remote_candidates: dict[str, int] = Field(default_factory=dict)
    turn_attempts: list[TurnAttempt] = Field(default_factory=list)
    phase_t: dict[str, float] = Field(default_factory=dict)  # event -> monotonic time
    setup_s: float | None = None  # offer created (offerer) / received (answerer) -> dc open
    dc_rtt_ms: float | None = None  # median of the echo probes
    dc_bytes: int | None = None
    dc_goodput_mbps: float | None = None  # at the receiver, from the sender's start time
    media: list[MediaKindStats] = Field(default_factory=list)
    media_window_s: float | None = None
    close_s: float | None = None  # closing the peer connection (TURN deallocation included)
    disconnects: int = 0  # times ICE went "disconnected" after connecting (liveness)
    disconnected_s: float = 0.0  # time spent disconnected


def command_line(cmd: CallCommand) -> str:
    """The stdin line that asks an agent to run `cmd`."""
    return _dump({"cmd": "call", **cmd.model_dump(mode="json")})


def exit_line() -> str:
    return _dump({"cmd": "exit"})


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":")) + "\n"

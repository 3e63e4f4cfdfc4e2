"""A call's settings, defined once: media, phase timeouts, liveness, and the names of phases,
milestones and errors.

The scenario's `call:` section (`simnet.scenario.model.CallSpec`) and the command the controller
sends a peer agent (`simnet.peer.protocol.CallCommand`) are both built from these models, so a
scenario's settings reach the agent as the same objects, with the same defaults and bounds, and
a default can never differ between what a user reads and what the agent does.

Pure pydantic: this module imports nothing of simnet's kernel, services or peers, and no aiortc,
so the scenario model, the controller and the agent (which starts inside a namespace and pays
for every import) can all use it. `tests/unit/test_import_graph.py` holds it to that.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Base model that rejects unknown keys with the list of allowed ones (and a likely typo)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = list(cls.model_fields)
            for key in data:
                if key not in cls.model_fields:
                    close = difflib.get_close_matches(str(key), allowed, n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    raise ValueError(f"unknown field '{key}'{hint}; allowed: {', '.join(allowed)}")
                if isinstance(data[key], bool) and _numeric(cls.model_fields[key].annotation):
                    raise ValueError(
                        f"{key}: {str(data[key]).lower()} is not a number (YAML reads true, "
                        "false, yes, no, on and off as booleans)"
                    )
        return data


def _numeric(annotation: Any) -> bool:
    """Whether a field holds a number (int or float, maybe None), not a boolean: pydantic
    would read `count: true` as 1."""
    if annotation in (int, float):
        return True
    args = get_args(annotation)
    return bool(args) and bool not in args and any(a in (int, float) for a in args)


IcePolicy = Literal["all", "relay"]
#: how a peer reaches a TURN server (RFC 5766 over UDP or TCP, RFC 6062-era TLS on TCP): the
#: scenario's `turn_transports`, a relay's `relay_protocol` and the TURN client all use this one
TurnTransport = Literal["udp", "tcp", "tls"]
TURN_TRANSPORTS: tuple[TurnTransport, ...] = get_args(TurnTransport)
SignalingKind = Literal["ws", "http"]

# The bounded phases of a call, in order; each has a timeout (`Timeouts.<phase>_s`) and an
# error kind `timeout:<phase>`.
Phase = Literal["gathering", "signaling", "ice", "dtls", "datachannel", "media"]
PHASES: tuple[Phase, ...] = get_args(Phase)

# What a call's `error` can be. "timeout:<phase>": a phase hit its limit. The others name
# what failed: "turn-auth" the TURN server refused the credentials (401) and no path was left;
# "turn-quota" it refused the allocation for its limits (486 Allocation Quota Reached: the
# user's quota; 508 Insufficient Capacity: the server's total quota or bandwidth capacity) and
# no path was left;
# "ice-failed" no candidate pair worked (or none could be formed); "signaling" the channel could
# not be opened or broke; "dtls" the handshake failed; "datachannel" the data channel closed
# before its exchange ended (the other side gave up, or SCTP did); "media" no frames in the
# media window;
# "agent" an unexpected exception inside the agent (details in error_detail and its log);
# "browser" a browser peer's page crashed (the renderer died, its DevTools connection closed)
# or stopped answering (the agent's watchdog), reported within the phase timeout;
# "proxy-unsupported" a side's network lets out only an HTTP proxy (`firewall.proxy_only`) its
# stack cannot use, so the call was not tried; "proxy-refused" the proxy refused a tunnel the
# call needed (its access log's TCP_DENIED: a port outside `connect_ports`, bad credentials).
ERROR_KINDS: tuple[str, ...] = (
    "ice-failed",
    "turn-auth",
    "turn-quota",
    "signaling",
    "dtls",
    "datachannel",
    "media",
    "agent",
    "browser",
    "proxy-unsupported",
    "proxy-refused",
    *(f"timeout:{p}" for p in PHASES),
)

#: STUN error codes of a TURN server refusing an allocation for its limits (RFC 8656)
TURN_QUOTA_CODES = (486, 508)

# Milestones the agent reports (`{"event": <milestone>, "t": ...}`), in the order a successful
# call produces them for each role. `ice_checking` is reported when aiortc's ICE state says so,
# which may be before or after the description exchange ends, so neither role's order lists it.
OFFERER_MILESTONES = (
    "call_started",
    "offer_created",
    "gathering_done",
    "offer_sent",
    "answer_received",
    "ice_connected",
    "dtls_connected",
    "dc_open",
)
ANSWERER_MILESTONES = (
    "call_started",
    "offer_received",
    "gathering_done",
    "answer_sent",
    "ice_connected",
    "dtls_connected",
    "dc_open",
)
# The milestones a result row places on the call's time axis (`<role>_<milestone>_ms` columns,
# offsets from the offerer's `offer_created`), in call order. Stored results use these names.
ROW_MILESTONES = (
    "offer_created",
    "gathering_done",
    "offer_sent",
    "answer_received",
    "ice_checking",
    "ice_connected",
    "dtls_connected",
    "dc_open",
)

# The agent's bounded ending, counted in `Timeouts.total_s`.
DONE_WAIT_S = 5.0  # at most this long for the peer's "done" (capped by the datachannel timeout)
CLOSE_TIMEOUT_S = 5.0  # each of: closing the peer connection, closing the signaling channel


class VideoSpec(Strict):
    """Synthetic video each peer sends (VP8 in aiortc, encoded in software).

    640x480 at 30 fps, a webcam call's size, is the default. Measured on a 2-core machine
    (scenarios/direct-lan.yaml, 10 s of media both ways, two runs): each side received 30.0 fps
    at ~545 kbit/s without loss, and the whole run took 11.6-11.8 CPU-seconds against 6.8-7.5 at
    320x240 and 15 fps. On an impaired link the userspace emulator shares those cores: the row's
    `emulator_limited` says when it fell behind, and a smaller size leaves it more room.
    """

    width: int = Field(default=640, ge=16, le=3840, description="pixels")
    height: int = Field(default=480, ge=16, le=2160, description="pixels")
    fps: int = Field(default=30, ge=1, le=60, description="frames per second")


#: How a peer's media is coded: every frame encoded and decoded (live), or encoded once and
#: replayed, received frames counted without decoding (replay; `MediaSpec.coding`).
MediaCoding = Literal["live", "replay"]


class MediaSpec(Strict):
    """Media each peer sends to the other (both directions, same spec)."""

    audio: bool = Field(default=False, description="a 48 kHz Opus tone")
    video: VideoSpec | None = Field(default=None, description="VP8 frames of a moving pattern")
    coding: MediaCoding = Field(
        default="live",
        description="live: each peer encodes what it sends and decodes what it receives, as a "
        "client does; replay: the tone is Opus-encoded once per process and its packets "
        "replayed, received frames are counted, not decoded (the same packets on the wire for "
        "a fraction of the CPU: many calls on one machine; audio only, aiortc and pion peers;"
        " a pion peer always replays)",
    )

    @model_validator(mode="after")
    def _replay_is_audio(self) -> MediaSpec:
        if self.coding == "replay" and (not self.audio or self.video is not None):
            raise ValueError(
                "coding: replay replays audio only; set audio: true and no video, or coding: live"
            )
        return self

    @property
    def kinds(self) -> list[str]:
        return (["audio"] if self.audio else []) + (["video"] if self.video else [])


class Timeouts(Strict):
    """Upper bound of each phase, so a call can never hang.

    gathering: setLocalDescription (aiortc gathers all candidates there, no trickle);
    signaling: opening the channel and each wait for the peer's description;
    ice: checks until a pair is nominated; dtls: handshake after ICE;
    datachannel: channel open, then the RTT probes and the transfer, each;
    media: the first frame of every expected kind, both directions.
    """

    gathering_s: float = Field(
        default=5, gt=0, le=300, description="setting the local description (gathering)"
    )
    signaling_s: float = Field(
        default=5, gt=0, le=300, description="opening the channel; each wait for a description"
    )
    ice_s: float = Field(default=10, gt=0, le=300, description="checks until a pair is nominated")
    dtls_s: float = Field(default=5, gt=0, le=300, description="the handshake after ICE")
    datachannel_s: float = Field(
        default=10, gt=0, le=300, description="channel open; then the echoes, the transfer, each"
    )
    media_s: float = Field(
        default=10, gt=0, le=300, description="first frame of every kind, both directions"
    )

    def total_s(self, duration_s: float = 0.0) -> float:
        """A bound on a whole call as the agent runs it: every wait at its limit (the signaling
        channel's open and the wait for the peer's description; the data channel's open and
        two more waits), the media time, and the bounded ending ("done", then two closes)."""
        return (
            self.gathering_s
            + 2 * self.signaling_s
            + self.ice_s
            + self.dtls_s
            + 3 * self.datachannel_s
            + self.media_s
            + duration_s
            + DONE_WAIT_S
            + 2 * CLOSE_TIMEOUT_S
        )


class Liveness(Strict):
    """When a peer calls its ICE connection "disconnected" (and "connected" again), as a browser
    does: aiortc itself only reports "failed", ~30 s into a dead path (see
    `simnet.peer.aiortc.liveness`). The 2.5 s default follows libwebrtc's receive timeout (not
    compared with a real browser here)."""

    check_interval_s: float = Field(
        default=0.5, gt=0, le=60, description="connectivity checks on the selected pair"
    )
    disconnected_after_s: float = Field(
        default=2.5, gt=0, le=300, description="silence that makes ICE disconnected"
    )

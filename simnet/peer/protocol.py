"""The peer protocol: what the controller and a peer program say to each other, one JSON object
per line. A documented, versioned interface (docs/peer-protocol.md): simnet's aiortc agent,
its Chromium agent and a team's own client all speak it.

The controller writes commands to the peer's stdin (`{"cmd": "call", ...CallCommand}`,
`{"cmd": "exit"}`, and during a call `{"cmd": "ice-restart"}`); the peer writes events to its
stdout, each with `"t"`, a CLOCK_MONOTONIC reading (`time.monotonic()`). Every namespace shares
that clock, so timestamps from the two peers of a call (and from the orchestrator) are directly
comparable: one-way phase timings need no clock synchronisation.

The models live here, apart from the agent, so the orchestrator can build and validate a call
without importing aiortc; they are plain pydantic data with no behaviour. A call's settings
(media, timeouts, liveness) and the names of its phases, milestones and errors are
`simnet.callspec`'s, shared with the scenario model. The document's field tables and
docs/peer-protocol.schema.json are generated from these models
(`python -m simnet.peer.protocol --markdown | --schema`), and tests/unit/test_peer_protocol.py
fails when either drifts from them.
"""

from __future__ import annotations

import json
import sys
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import models_json_schema

from simnet.callspec import (
    ERROR_KINDS,
    IcePolicy,
    Liveness,
    MediaSpec,
    SignalingKind,
    Timeouts,
    TurnTransport,
    VideoSpec,
)
from simnet.fielddoc import bounds

Role = Literal["offer", "answer"]

#: The version of this interface. A peer announces the version it speaks in its "ready" event
#: (`"protocol": 1`); the controller refuses a peer that speaks another one, with a message that
#: names both. Raised when a change would break an existing peer (a field renamed or removed, a
#: meaning changed); new optional fields do not raise it.
PROTOCOL_VERSION = 1


#: One line of a peer's event stream, parsed: a JSON object with `"event"` (its name) and `"t"`
#: (CLOCK_MONOTONIC seconds). The stream is the protocol's open end (a peer may send events of
#: its own, and any event may carry more fields), so a line stays JSON; what the controller
#: relies on is read into models: the ready event (`ReadyEvent`), the result (`CallResult`).
Event = dict[str, Any]

#: What a peer sends is read strictly: a JSON number that is finite (`NaN` and `Infinity`,
#: which Python's JSON reader accepts, are not numbers of this protocol), an integer that is an
#: integer (not `true`, not `1.0`), a boolean that is a boolean (not `1`).
Number = Annotated[float, Strict(), AllowInfNan(False)]

#: How many of a message's problems an error names, and how much of a value it shows.
SHOWN_PROBLEMS = 3
SHOWN_CHARS = 80


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadyEvent(_Model):
    """A peer's first line: it is up, warm, and speaks this protocol. Any other field is allowed
    (simnet's aiortc agent adds pid, netns, import_s, warm_s) and kept in
    `PeerAgent.ready_event`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event: Literal["ready"] = Field(description="what this line is")
    t: Number = Field(description="CLOCK_MONOTONIC seconds when the peer became ready")
    protocol: StrictInt = Field(
        description=f"the peer protocol version it speaks: {PROTOCOL_VERSION}"
    )
    peer_kind: str = Field(
        min_length=1, description="what the peer is: aiortc, chromium, or a name of your own"
    )
    peer_version: str = Field(description="its implementation and version, free text")


#: Commands the controller may send while a call runs, and the event that answers each. They
#: are optional within version 1: a peer that cannot do one answers that event with
#: `"supported": false` and a reason (or, a peer that does not know the command, with an
#: "error" event), never by dying or failing the call.
MIDCALL_COMMANDS: dict[str, str] = {"ice-restart": "ice_restart"}


class IceRestartAnswer(_Model):
    """A peer's answer to `{"cmd": "ice-restart"}` during a call. If supported, it then
    renegotiates with new ICE credentials (an offer with iceRestart through signaling, which the
    other peer answers) and reports `ice_restart_started`, then `ice_restart_connected` (or
    `ice_restart_failed` with a `reason`). Any other field is allowed."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event: Literal["ice_restart"] = Field(description="what this line is")
    t: Number = Field(description="CLOCK_MONOTONIC seconds when the peer took the command")
    supported: StrictBool = Field(description="whether this peer restarts ICE (it now does)")
    reason: str | None = Field(
        default=None, description="why it cannot (or what is odd), for people"
    )


class IceServer(_Model):
    """One RTCIceServer. Note aiortc uses only the first STUN and the first TURN URL it accepts
    across all servers (and only `turn:...?transport=udp|tcp` and `turns:...?transport=tcp`)."""

    urls: list[str] = Field(description="stun:, turn: and turns: URLs")
    username: str | None = Field(default=None, description="TURN user name")
    credential: str | None = Field(default=None, description="TURN password")


class CallCommand(_Model):
    """One call, from one peer's side. Both peers get the same fields except role and ids."""

    role: Role = Field(description="offer: create the data channel and send the offer")
    signaling_kind: SignalingKind = Field(
        default="ws", description="ws: WebSocket; http: POST + long-poll (same server)"
    )
    signaling_url_base: str = Field(
        description="the signaling server's root, http://ADDR:PORT (either scheme fits either"
        " transport)"
    )
    room: str = Field(description="the call's signaling room, fresh for every call")
    peer: str = Field(description="this peer's name in the room (the 'from' of its messages)")
    remote_peer: str = Field(description="the other peer's name (the 'to')")
    ice_servers: list[IceServer] = Field(
        default_factory=list, description="every STUN/TURN server the call may use"
    )
    ice_transport_policy: IcePolicy = Field(
        default="all", description="relay: relayed candidates only"
    )
    ca_file: str | None = Field(
        default=None,
        description="PEM file of the CAs to trust for turns: URLs (the run's CA, which signed"
        " coturn's certificate); null: the system store",
    )
    data_bytes: int = Field(
        default=1_000_000,
        ge=0,
        description="bytes sent offerer -> answerer on the reliable ordered channel, timed",
    )
    data_chunk_bytes: int = Field(
        default=16_384, ge=1, le=65_536, description="size of each binary message of the transfer"
    )
    rtt_probes: int = Field(
        default=10, ge=0, description="ping/pong echoes before the transfer (offerer sends)"
    )
    media: MediaSpec = Field(
        default_factory=MediaSpec, description="synthetic tracks each peer sends"
    )
    duration_s: float = Field(
        default=0.0, ge=0, description="media time measured after the first frames"
    )
    hold_s: float = Field(
        default=0.0,
        ge=0,
        description="stay in the call this long after the data channel opens, whatever ICE"
        " does meanwhile (a timeline's window; state changes go out as ice_state events)",
    )
    liveness: Liveness | None = Field(
        default_factory=Liveness,
        description="report ICE disconnected as a browser does; null: the stack's own states",
    )
    timeouts: Timeouts = Field(default_factory=Timeouts, description="the bound of each phase")


class CandidateInfo(_Model):
    type: str = Field(description="host / srflx / prflx / relay")
    protocol: str = Field(description="udp / tcp")
    address: str
    port: StrictInt


class RelayInfo(_Model):
    """How the local relayed candidate reaches its TURN server."""

    server_url: str | None = Field(description="the ice_servers URL the relay came from")
    server: str = Field(description='"ip:port" of the TURN server')
    transport: TurnTransport = Field(description="peer to TURN server")


class SelectedPair(_Model):
    local: CandidateInfo
    remote: CandidateInfo
    relay: RelayInfo | None = Field(
        default=None, description="set when the local candidate is a relay"
    )


class TurnAttempt(_Model):
    """One TURN allocation tried while gathering."""

    server: str = Field(description='"ip:port"')
    transport: TurnTransport
    ok: StrictBool
    error: str | None = None
    error_code: StrictInt | None = Field(default=None, description="STUN error code, e.g. 401")
    elapsed_ms: Number
    proxy_ms: Number | None = Field(
        default=None,
        description="behind an HTTP proxy: its CONNECT round trip (request to 200), part of "
        "elapsed_ms: the time the proxy added before the allocation (aiortc's agent)",
    )


class SentStats(_Model):
    packets: StrictInt
    bytes: StrictInt
    bitrate_kbps: Number = Field(description="over the measured media window")


class ReceivedStats(_Model):
    packets: StrictInt
    packets_lost: int
    jitter_ms: Number
    frames: StrictInt = Field(
        description="frames delivered to the application in the window (decoded; with "
        "coding: replay, reassembled and not decoded)"
    )
    fps: Number
    bitrate_kbps: Number | None = Field(
        description="from the sender's RTCP sender reports; null when fewer than two arrived"
    )


class MediaKindStats(_Model):
    kind: str = Field(description="audio / video")
    sent: SentStats | None
    received: ReceivedStats | None
    rtt_ms: Number | None = Field(description="from remote-inbound-rtp (RTCP receiver reports)")


class CallResult(_Model):
    """The final event of a call (`{"event": "result", "t": ..., **CallResult}`)."""

    role: Role
    connected: StrictBool = Field(description="ICE nominated a pair and DTLS completed")
    error: str | None = Field(
        default=None, description="null or one of the error kinds (simnet.callspec.ERROR_KINDS)"
    )
    error_detail: str | None = Field(default=None, description="what happened, for people")
    selected_pair: SelectedPair | None = None
    direct_pair_succeeded: StrictBool | None = Field(
        default=None,
        description="whether a pair of two non-relayed candidates passed its connectivity"
        " checks (with a relayed selected pair: the relay won a nomination race the network did"
        " not force); null: the stack does not report its checks",
    )
    local_candidates: dict[str, StrictInt] = Field(
        default_factory=dict, description="candidate type -> count"
    )
    remote_candidates: dict[str, StrictInt] = Field(
        default_factory=dict, description="candidate type -> count"
    )
    local_candidate_families: dict[str, StrictInt] = Field(
        default_factory=dict, description="ipv4 / ipv6 -> count of the local candidates"
    )
    remote_candidate_families: dict[str, StrictInt] = Field(
        default_factory=dict, description="ipv4 / ipv6 -> count of the remote candidates"
    )
    turn_attempts: list[TurnAttempt] = Field(default_factory=list)
    phase_t: dict[str, Number] = Field(
        default_factory=dict, description="milestone -> when it first happened (CLOCK_MONOTONIC)"
    )
    setup_s: Number | None = Field(
        default=None, description="offer created (offerer) / received (answerer) -> dc open"
    )
    dc_rtt_ms: Number | None = Field(default=None, description="median of the ping/pong echoes")
    dc_bytes: StrictInt | None = Field(default=None, description="bytes the transfer delivered")
    dc_goodput_mbps: Number | None = Field(
        default=None, description="at the receiver, from the sender's start time"
    )
    media: list[MediaKindStats] = Field(default_factory=list)
    media_window_s: Number | None = None
    close_s: Number | None = Field(
        default=None, description="closing the peer connection (TURN deallocation included)"
    )
    disconnects: StrictInt = Field(
        default=0, description="times ICE went disconnected after connecting"
    )
    disconnected_s: Number = Field(default=0.0, description="time spent disconnected")
    clock_error_ms: Number | None = Field(
        default=None,
        description="a peer that stamps its events on its own clock and maps them to the shared"
        " one (a browser page) gives the bound on that mapping's error here: every time of the"
        " result and its events is within +- this (ms) of the shared clock; null: the peer reads"
        " the shared clock itself (the aiortc agent)",
    )

    @field_validator("error")
    @classmethod
    def _known_error(cls, error: str | None) -> str | None:
        if error is not None and error not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {error!r}; one of {', '.join(ERROR_KINDS)}")
        return error


def problems(exc: ValidationError, what: str) -> str:
    """A short account of why a peer's message is invalid: `what` (the message, e.g. "result"),
    then each field and its problem ("result.connected: Input should be a valid boolean, got
    1"), the first few only, values cut short: never pydantic's whole dump."""
    errors = exc.errors(include_url=False)
    parts = []
    for error in errors[:SHOWN_PROBLEMS]:
        where = ".".join([what, *map(str, error["loc"])])
        got = "" if error["type"] == "missing" else f", got {_dumped(error['input'])}"
        parts.append(f"{where}: {error['msg']}{got}")
    more = len(errors) - SHOWN_PROBLEMS
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _dumped(value: object) -> str:
    """`value` for a message, as Python writes it, cut short."""
    return _cut(repr(value))


def ready_problem(event: Event) -> str | None:
    """Why a peer's first event does not start a session of this protocol (None: it does).

    The version rule: a peer says which version it speaks, and only the same version is
    accepted; the version is checked before anything else, so a peer of another version is
    told that, not that some field is missing. The version is an integer: `true` (which equals
    1 in Python) is not a version."""
    if event.get("event") != "ready":
        return f"its first event must be 'ready', not {_dumped(event.get('event'))}"
    version = event.get("protocol")
    if type(version) is not int or version != PROTOCOL_VERSION:
        return (
            f"it speaks peer protocol {_dumped(version)}, simnet speaks "
            f'{PROTOCOL_VERSION}: its ready event must carry "protocol": {PROTOCOL_VERSION}'
        )
    try:
        ReadyEvent.model_validate(event)
    except ValidationError as exc:
        return f"its ready event is not valid: {problems(exc, 'ready')}"
    return None


def parse_result(fields: dict[str, Any]) -> CallResult:
    """A result event's fields as a `CallResult`; `ValueError` with a short message naming
    each invalid field (`problems`) otherwise."""
    try:
        return CallResult.model_validate(fields)
    except ValidationError as exc:
        raise ValueError(f"its result is not valid: {problems(exc, 'result')}") from None


def command_line(cmd: CallCommand) -> str:
    """The stdin line that asks an agent to run `cmd`."""
    return _dump({"cmd": "call", **cmd.model_dump(mode="json")})


def exit_line() -> str:
    return _dump({"cmd": "exit"})


def midcall_line(name: str) -> str:
    """The stdin line of a mid-call command (one of `MIDCALL_COMMANDS`)."""
    if name not in MIDCALL_COMMANDS:
        raise ValueError(
            f"{name!r} is not a mid-call command; one of {', '.join(MIDCALL_COMMANDS)}"
        )
    return _dump({"cmd": name})


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":")) + "\n"


# --- the protocol as documents ------------------------------------------------------------------

#: The models a peer reads or writes, in the order docs/peer-protocol.md presents them.
DOCUMENTED_MODELS: tuple[type[BaseModel], ...] = (
    ReadyEvent,
    CallCommand,
    IceRestartAnswer,
    IceServer,
    MediaSpec,
    VideoSpec,
    Timeouts,
    Liveness,
    CallResult,
    SelectedPair,
    CandidateInfo,
    RelayInfo,
    TurnAttempt,
    MediaKindStats,
    SentStats,
    ReceivedStats,
)


#: The models of the command a peer reads (open to new optional fields: see `json_schema`).
COMMAND_MODELS = ("CallCommand", "IceServer", "MediaSpec", "VideoSpec", "Timeouts", "Liveness")


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the ready event, the call command and the call result:
    what `python -m simnet.peer.protocol --schema` prints and docs/peer-protocol.schema.json
    holds."""
    _, definitions = models_json_schema(
        [(m, "validation") for m in (ReadyEvent, CallCommand, IceRestartAnswer, CallResult)],
        title=f"simnet peer protocol {PROTOCOL_VERSION}",
    )
    # What simnet sends may grow optional fields within a version, which a peer ignores (the
    # version rule): the command's objects are open. A result is closed: the controller refuses
    # a field it does not know, so a typo in a peer is an error, not a silently missing value.
    for name in COMMAND_MODELS:
        definitions["$defs"][name].pop("additionalProperties", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"simnet peer protocol version {PROTOCOL_VERSION}; docs/peer-protocol.md",
        **definitions,
    }


def _type_name(annotation: Any) -> str:
    """A field's type as the document writes it (JSON words: string, integer, null, ...)."""
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation in simple:
        return simple[annotation]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:  # Number: a float read strictly
        return _type_name(args[0])
    if origin is Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin in (Union, UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"object of {_type_name(args[1])}"
    return str(annotation)  # pragma: no cover - a new kind of annotation: the doc test shows it


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return f"{type(value).__name__} defaults"
    return f"`{json.dumps(value)}`"


def markdown_tables() -> str:
    """One table per documented model: field, type, default, meaning (from the models' own
    descriptions). docs/peer-protocol.md holds exactly this text between its "generated"
    markers, which tests/unit/test_peer_protocol_doc.py checks."""
    parts = []
    for model in DOCUMENTED_MODELS:
        rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            meaning = (field.description or "").replace("|", "\\|")
            kind = _type_name(field.annotation) + bounds(field)
            rows.append(f"| `{name}` | {kind} | {_default(field)} | {meaning} |")
        parts.append(f"#### {model.__name__}\n\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """`python -m simnet.peer.protocol --schema | --markdown`: the protocol's models as JSON
    Schema or as the document's field tables."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m simnet.peer.protocol", description=main.__doc__
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--schema", action="store_true", help="JSON Schema of ready, call, result")
    what.add_argument("--markdown", action="store_true", help="the field tables of the document")
    args = parser.parse_args(argv)
    if args.schema:
        sys.stdout.write(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(markdown_tables())
    return 0


if __name__ == "__main__":
    sys.exit(main())
